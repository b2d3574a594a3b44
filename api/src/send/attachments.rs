//! What an attachment's content and name become: the canonical base64 of its bytes, and a name
//! with the right extension when the client sent none.

use base64::Engine as _;

/// Accepts standard base64, with or without padding, ignoring line breaks a client's encoder may
/// have inserted (Python's `encodebytes` wraps at 76 columns). Returns the canonical form.
pub fn normalise_base64(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(compact.as_bytes()).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The name of an attachment sent without one: `attachment-<N>` (N counts from 1, in request
/// order) with the extension mail clients expect for its content type, so the recipient's client
/// can open it.
pub fn default_filename(index: usize, content_type: &str) -> String {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let ext = match essence.as_str() {
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        "application/json" => "json",
        "application/xml" | "text/xml" => "xml",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "application/rtf" | "text/rtf" => "rtf",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "text/markdown" => "md",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        "message/rfc822" => "eml",
        _ => "bin",
    };
    format!("attachment-{}.{ext}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_attachment_gets_a_name_with_its_type_s_extension() {
        assert_eq!(default_filename(0, "application/pdf"), "attachment-1.pdf");
        assert_eq!(
            default_filename(2, "Text/Plain; charset=utf-8"),
            "attachment-3.txt"
        );
        assert_eq!(
            default_filename(1, "application/x-unknown"),
            "attachment-2.bin"
        );
    }
}
