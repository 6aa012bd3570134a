//! Fuzz the X.509 parsers behind owner certificates: arbitrary bytes must never panic
//! as a certificate, CRL or certificate request, and whatever parses is the canonical
//! encoding (re-checking it against an empty registry never panics either).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = lf_record::Certificate::from_der(data) {
        assert_eq!(c.to_der(), data);
        let _ = c.signed_by(&c.owner());
        let _ = c.valid_at(0);
    }
    if let Ok(crl) = lf_record::Crl::from_der(data) {
        let _ = crl.entries().len();
    }
    let _ = lf_record::CertificateRequest::from_der(data);
    let reg = lf_record::CertRegistry::new(&[data.to_vec()]);
    if let Ok(mut reg) = reg {
        let _ = reg.add_certificate(data);
        let _ = reg.add_crl(data);
    }
});
