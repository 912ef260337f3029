//! A minimal, bounds-checked DER reader: just enough X.509 to find a certificate's
//! SubjectPublicKeyInfo and one extension. It never panics on any input (proptested) and
//! rejects indefinite lengths, high tag numbers and lengths past the end of the input.

/// Why DER input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    /// Input ended inside a tag or length.
    #[error("DER input truncated")]
    Truncated,
    /// Unsupported or invalid tag/length encoding.
    #[error("unsupported DER encoding: {0}")]
    Unsupported(&'static str),
    /// A required element has the wrong tag.
    #[error("unexpected DER tag 0x{got:02x}, expected 0x{want:02x}")]
    UnexpectedTag {
        /// Tag found.
        got: u8,
        /// Tag required.
        want: u8,
    },
}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The value bytes.
    pub content: &'a [u8],
    /// The whole element, header included.
    pub raw: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let tag = *input.first().ok_or(DerError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(DerError::Unsupported("high tag number"));
    }
    let l0 = *input.get(1).ok_or(DerError::Truncated)?;
    let (len, hdr) = if l0 < 0x80 {
        (l0 as usize, 2usize)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 {
            return Err(DerError::Unsupported("indefinite length"));
        }
        if n > 4 {
            return Err(DerError::Unsupported("length over 4 bytes"));
        }
        let bytes = input.get(2..2 + n).ok_or(DerError::Truncated)?;
        let mut len = 0usize;
        for b in bytes {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len).ok_or(DerError::Truncated)?;
    if end > input.len() {
        return Err(DerError::Truncated);
    }
    Ok((
        Tlv {
            tag,
            content: &input[hdr..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// Reads one element that must carry `want` as its tag.
pub fn expect(input: &[u8], want: u8) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (t, rest) = read(input)?;
    if t.tag != want {
        return Err(DerError::UnexpectedTag { got: t.tag, want });
    }
    Ok((t, rest))
}

/// DER header for a value of `len` bytes under `tag`.
pub fn header(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag];
    if len < 0x80 {
        v.push(len as u8);
    } else {
        let be = (len as u32).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        v.push(0x80 | (4 - skip) as u8);
        v.extend_from_slice(&be[skip..]);
    }
    v
}

/// The parts of an X.509 certificate the P2P layer needs.
#[derive(Debug, Clone, Copy)]
pub struct CertParts<'a> {
    /// The SubjectPublicKeyInfo element, header included.
    pub spki: &'a [u8],
    /// The extnValue content of the extension whose OID (DER content bytes) was asked for.
    pub extension: Option<&'a [u8]>,
}

/// Walks `Certificate → TBSCertificate` and returns its SPKI and the extension `oid`.
pub fn cert_parts<'a>(cert: &'a [u8], oid: &[u8]) -> Result<CertParts<'a>, DerError> {
    let (c, _) = expect(cert, 0x30)?;
    let (tbs, _) = expect(c.content, 0x30)?;
    let mut rest = tbs.content;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = read(rest)?.1;
    }
    rest = expect(rest, 0x02)?.1; // serialNumber
    rest = expect(rest, 0x30)?.1; // signature AlgorithmIdentifier
    rest = expect(rest, 0x30)?.1; // issuer
    rest = expect(rest, 0x30)?.1; // validity
    rest = expect(rest, 0x30)?.1; // subject
    let (spki, mut rest) = expect(rest, 0x30)?;
    let mut extension = None;
    while !rest.is_empty() {
        let (t, r) = read(rest)?;
        rest = r;
        if t.tag != 0xa3 {
            continue; // issuerUniqueID / subjectUniqueID
        }
        let (exts, _) = expect(t.content, 0x30)?;
        let mut e = exts.content;
        while !e.is_empty() {
            let (ext, r) = expect(e, 0x30)?;
            e = r;
            let (id, mut inner) = expect(ext.content, 0x06)?;
            if inner.first() == Some(&0x01) {
                inner = read(inner)?.1; // critical BOOLEAN
            }
            let (val, _) = expect(inner, 0x04)?;
            if id.content == oid {
                if extension.is_some() {
                    return Err(DerError::Unsupported("duplicate extension"));
                }
                extension = Some(val.content);
            }
        }
    }
    Ok(CertParts {
        spki: spki.raw,
        extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_form_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let mut v = header(0x04, len);
            v.extend(std::iter::repeat_n(7u8, len));
            let (t, rest) = read(&v).unwrap();
            assert_eq!(t.content.len(), len);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn truncated_and_indefinite_inputs_are_rejected() {
        assert_eq!(read(&[]).unwrap_err(), DerError::Truncated);
        assert_eq!(read(&[0x30, 0x05, 1]).unwrap_err(), DerError::Truncated);
        assert!(matches!(read(&[0x30, 0x80]), Err(DerError::Unsupported(_))));
        assert!(matches!(
            read(&[0x1f, 0x01, 0]),
            Err(DerError::Unsupported(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = cert_parts(&bytes, &[1, 2, 3]);
            let _ = read(&bytes);
        }
    }
}
