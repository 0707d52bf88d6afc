//! Pure encodings SQS needs on the wire: MD5 (RFC 1321, the `md-5` crate), base64 (RFC
//! 4648, the `base64` crate) and the `MD5OfMessageAttributes` digest, so clients that verify
//! checksums accept our answers.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::model::{AttributeValue, MessageAttribute};

/// MD5 digest of `data` as 32 lowercase hex characters (the form SQS returns).
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 digest of `data` (RFC 1321).
pub fn md5(data: &[u8]) -> [u8; 16] {
    use ::md5::Digest;
    ::md5::Md5::digest(data).into()
}

/// Standard base64 that writes padding and reads it or its absence, ignoring non-zero
/// trailing bits as a hand decoder does.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding (how the JSON protocol carries blobs).
pub fn base64_encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// Decodes standard base64 (padding optional); `None` on any invalid character or length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// `MD5OfMessageAttributes` as AWS computes it: for each attribute in name order, the
/// length-prefixed name, length-prefixed data type, a transport byte (1 string, 2 binary)
/// and the length-prefixed value, all hashed together. `None` when there are no attributes.
pub fn message_attributes_md5(attributes: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut buffer = Vec::new();
    for (name, attribute) in attributes {
        push_length_prefixed(&mut buffer, name.as_bytes());
        push_length_prefixed(&mut buffer, attribute.data_type.as_bytes());
        match &attribute.value {
            AttributeValue::String(text) => {
                buffer.push(1);
                push_length_prefixed(&mut buffer, text.as_bytes());
            }
            AttributeValue::Binary(bytes) => {
                buffer.push(2);
                push_length_prefixed(&mut buffer, bytes);
            }
        }
    }
    Some(md5_hex(&buffer))
}

fn push_length_prefixed(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(md5_hex(input.as_bytes()), expected, "md5({input:?})");
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors_and_round_trips() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Z"), None);
    }

    fn attribute(data_type: &str, value: AttributeValue) -> MessageAttribute {
        MessageAttribute {
            data_type: data_type.to_owned(),
            value,
        }
    }

    #[test]
    fn attribute_md5_matches_an_independent_implementation() {
        // Expected digests computed with moto's `Message.attribute_md5` (moto 5.2.1).
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "attr".to_owned(),
            attribute("String", AttributeValue::String("value".to_owned())),
        );
        assert_eq!(
            message_attributes_md5(&attributes).as_deref(),
            Some("0a3eacc505c2c642f442010ddab0e8dc")
        );
        attributes.insert(
            "bin".to_owned(),
            attribute("Binary", AttributeValue::Binary(vec![0, 1, 2, 255])),
        );
        attributes.insert(
            "num".to_owned(),
            attribute("Number.int", AttributeValue::String("42".to_owned())),
        );
        assert_eq!(
            message_attributes_md5(&attributes).as_deref(),
            Some("9ee4119ab0bf81a21758c98c75297c3d")
        );
        assert_eq!(message_attributes_md5(&BTreeMap::new()), None);
    }
}
