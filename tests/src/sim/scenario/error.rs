//! The one error type of scenario files: which file, where in it, which field, and why.

use std::fmt;

/// A scenario that cannot be loaded or run: the file, the line and column when known, the
/// field (as a path such as `flow[2].to`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario file as it was named to the loader.
    pub file: String,
    /// 1-based line and column, when the error points at a place in the text.
    pub location: Option<(usize, usize)>,
    /// The field, e.g. `event[3].fail_node`; empty for the file as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ScenarioError {
    /// An error about `field` of `file`.
    pub fn new(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_owned(),
            location: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error pointing at byte `offset` of `text` (turned into line and column).
    pub(crate) fn at_offset(mut self, text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.location = Some((line, column));
        self
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}
