//! Placeholder: built by the foundations issue.
