//! `lf makegenesis`: create a new network (its genesis records and owner key).
//!
//! Asks the seed's questions for anything not given as a flag when stdin is a
//! terminal; with `--yes` or without a terminal it uses the defaults, so scripts can
//! create networks. Writes `genesis.lf` and `genesis-secret.pem` (mode 0600), and with
//! `-ca` a root CA in `genesis-ca.pem` (certificate and key, mode 0600) whose certificate
//! goes into the configuration's `auth_certificates`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use lf_record::{NetworkConfig, NetworkId, Record, create_genesis_records, lf_pow};

use crate::cli::args::MakegenesisArgs;
use crate::common::clock::now;
use crate::common::random;

struct Prompter {
    interactive: bool,
}

impl Prompter {
    fn ask(&self, question: &str, default: &str) -> anyhow::Result<String> {
        if !self.interactive {
            return Ok(default.to_string());
        }
        if default.is_empty() {
            eprint!("{question}: ");
        } else {
            eprint!("{question} [{default}]: ");
        }
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim();
        Ok(if line.is_empty() {
            default.to_string()
        } else {
            line.to_string()
        })
    }

    fn value<T: std::str::FromStr + ToString>(
        &self,
        given: Option<T>,
        question: &str,
        default: T,
    ) -> anyhow::Result<T> {
        if let Some(v) = given {
            return Ok(v);
        }
        loop {
            let text = self.ask(question, &default.to_string())?;
            match text.parse() {
                Ok(v) => return Ok(v),
                Err(_) if self.interactive => eprintln!("not a valid number: {text}"),
                Err(_) => bail!("{question}: not a valid number: {text}"),
            }
        }
    }
}

/// Builds the configuration from flags and answers.
fn config(a: &MakegenesisArgs, p: &Prompter) -> anyhow::Result<NetworkConfig> {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => p.ask("Network name (required)", "")?,
    };
    if name.trim().is_empty() {
        bail!("a network name is required (--name)");
    }
    let mut id = [0u8; 32];
    random::fill(&mut id);
    let contact = a.contact.clone().map_or_else(|| p.ask("Contact", ""), Ok)?;
    let comment = a.comment.clone().map_or_else(|| p.ask("Comment", ""), Ok)?;
    let min_links = p.value(a.min_links, "Minimum links per record", 2)?;
    let max_value = p.value(a.max_value_size, "Maximum value size in bytes", 1024)?;
    let drift = p.value(a.max_time_drift, "Maximum time drift in seconds", 60)?;
    let difficulty = p.value(
        a.difficulty,
        "Proof of work difficulty (0 = none)",
        lf_pow::DEFAULT_DIFFICULTY,
    )?;
    let amendable = a
        .amendable
        .clone()
        .map_or_else(|| p.ask("Amendable fields", ""), Ok)?;
    let config = NetworkConfig {
        format: 1,
        id: NetworkId(id),
        name,
        contact,
        comment,
        amendable_fields: amendable
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        auth_certificates: Vec::new(),
        auth_required: false,
        record_min_links: min_links,
        record_max_value_size: max_value,
        record_max_time_drift: drift,
        work_difficulty: difficulty,
        bootstrap_peers: a.peers.clone(),
        mdns: !a.no_mdns,
    };
    config.validate()?;
    Ok(config)
}

/// Creates the genesis records, paying their proof of work on all cores.
pub fn make_records(
    config: &NetworkConfig,
    owner: &lf_record::OwnerSecret,
    now: u64,
) -> anyhow::Result<Vec<Record>> {
    if config.work_difficulty > 0 {
        eprintln!("paying the genesis records' proof of work...");
    }
    let opts = lf_pow::SolveOptions {
        threads: 0,
        start_nonce: random_nonce(),
    };
    let recs = create_genesis_records(config, owner, now, &opts, &AtomicBool::new(false), &|_| {})?;
    Ok(recs)
}

fn random_nonce() -> u64 {
    let mut b = [0u8; 8];
    random::fill(&mut b);
    u64::from_le_bytes(b)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Runs `lf makegenesis`.
pub fn run(a: &MakegenesisArgs, json: bool) -> anyhow::Result<()> {
    let dir = a.out.clone().unwrap_or_else(|| ".".into());
    let genesis_path = dir.join("genesis.lf");
    if genesis_path.exists() && !a.force {
        bail!(
            "{} already exists (use --force to overwrite)",
            genesis_path.display()
        );
    }
    let prompter = Prompter {
        interactive: !a.yes && std::io::stdin().is_terminal(),
    };
    if a.auth_required && !a.ca {
        bail!("--auth-required needs a root CA (--ca)");
    }
    let mut config = config(a, &prompter)?;
    let ca = if a.ca {
        let name = a
            .ca_name
            .clone()
            .unwrap_or_else(|| format!("{} root CA", config.name));
        let ca = crate::common::certs::Ca::create(&name, a.ca_days, now())?;
        use base64::Engine;
        config
            .auth_certificates
            .push(base64::engine::general_purpose::STANDARD.encode(&ca.der));
        config.auth_required = a.auth_required;
        config.validate()?;
        let path = dir.join("genesis-ca.pem");
        write_private(&path, ca.to_pem().as_bytes())?;
        Some((ca, path))
    } else {
        None
    };
    let owner = random::new_owner();
    let records = make_records(&config, &owner, now())?;
    let bytes: Vec<u8> = records.iter().flat_map(|r| r.to_bytes().to_vec()).collect();
    std::fs::write(&genesis_path, &bytes)
        .with_context(|| format!("cannot write {}", genesis_path.display()))?;
    let secret_path = dir.join("genesis-secret.pem");
    write_private(&secret_path, owner.to_pem().as_bytes())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        println!("network ID     {}", config.id);
        println!("name           {}", config.name);
        println!("genesis owner  {}", owner.public());
        println!("min links      {}", config.record_min_links);
        println!("max value size {}", config.record_max_value_size);
        println!("max time drift {} s", config.record_max_time_drift);
        println!("difficulty     {}", config.work_difficulty);
        println!("amendable      {}", config.amendable_fields.join(","));
        println!(
            "LAN discovery  {}",
            if config.mdns { "on (mDNS)" } else { "off" }
        );
        if let Some((ca, path)) = &ca {
            println!("root CA        {} in {}", ca.key.public(), path.display());
            println!("auth required  {}", config.auth_required);
        }
        println!(
            "wrote {} ({} records, {} bytes) and {}",
            genesis_path.display(),
            records.len(),
            bytes.len(),
            secret_path.display()
        );
    }
    Ok(())
}
