//! Shell integration generated from the clap definition in `args.rs`, so it never
//! drifts from the real grammar: `lf completions <shell>` and `lf man`.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::args::Cli;

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "lf", out);
    Ok(())
}

/// Writes the man page `lf(1)` (roff) with a section per subcommand.
pub fn man(out: &mut dyn Write) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        writeln!(out, ".SH \"LF {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{about}")?;
        }
        let sub = sub.clone().bin_name(format!("lf {}", sub.get_name()));
        let sub_man = clap_mangen::Man::new(sub);
        sub_man.render_synopsis_section(out)?;
        sub_man.render_options_section(out)?;
    }
    man.render_extra_section(out)?;
    writeln!(
        out,
        ".SH ENVIRONMENT\n.TP\n\\fBLF_LOG\\fR\nlog filter of \\fBlf node-start\\fR \
         (default \\fBinfo\\fR)\n.TP\n\\fBLF_LOG_MAX_BYTES\\fR\nsize at which node.log \
         is rotated to node.log.1 (default 10 MiB)\n.SH FILES\n.TP\n\\fI/var/lib/lf\\fR\n\
         the node home when run as root (see systemd/lf.service)\n.TP\n\
         \\fI/var/lib/lf/mounts.yaml\\fR\nLFFS mounts, applied live"
    )?;
    man.render_version_section(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_has_every_subcommand() {
        let mut out = Vec::new();
        man(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH lf"), "{text}");
        for s in ["NODE-START", "GET", "SET", "STATUS", "COMPLETIONS"] {
            assert!(text.contains(&format!(".SH \"LF {s}\"")), "{s}");
        }
        assert!(text.contains("LF_LOG"));
    }
}
