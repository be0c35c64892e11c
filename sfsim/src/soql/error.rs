//! SOQL errors with Salesforce's codes and message layout: the statement, a
//! caret under the offending column, and `ERROR at Row:R:Column:C`.

#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl SoqlError {
    pub fn at(code: &'static str, soql: &str, offset: usize, text: impl AsRef<str>) -> SoqlError {
        let before = &soql[..offset.min(soql.len())];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        let line = soql[line_start..].lines().next().unwrap_or("");
        let caret = format!("{}^", " ".repeat(column - 1));
        SoqlError {
            code,
            message: format!(
                "\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{}",
                text.as_ref()
            ),
        }
    }

    pub fn malformed(soql: &str, offset: usize, text: impl AsRef<str>) -> SoqlError {
        SoqlError::at("MALFORMED_QUERY", soql, offset, text)
    }

    pub fn plain(code: &'static str, message: impl Into<String>) -> SoqlError {
        SoqlError {
            code,
            message: message.into(),
        }
    }
}
