//! Maps between byte spans in the TOML text and [`FieldPath`]s, using toml's spanned document.
//!
//! Serde errors come with a span and need a path; semantic errors (found on the raw structs)
//! come with a path and need a line and column. Both walk the same [`DeTable`] tree. The spans
//! toml records are: a key's own text, a plain value's text, an inline table's braces, and for
//! an `[[array.of.tables]]` entry only its header line.

use core::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{FieldPath, Segment};

/// The most specific path whose key or value span contains `target`.
///
/// Returns the root when nothing matches (e.g. an error about the document as a whole).
pub(crate) fn path_at(root: &DeTable<'_>, target: &Range<usize>) -> FieldPath {
    // toml gives the document root the empty span 0..0, so an empty span means the root.
    if target.is_empty() {
        return FieldPath::root();
    }
    let mut best: Option<(usize, usize, FieldPath)> = None;
    walk_table(root, &mut FieldPath::root(), target, &mut best);
    best.map_or_else(FieldPath::root, |(_, _, path)| path)
}

/// The span of the value at `path`, or of its nearest ancestor that is in the text (a field
/// that took its default is not in the text, so its table's header stands in for it).
pub(crate) fn span_of(root: &Spanned<DeTable<'_>>, path: &FieldPath) -> Option<Range<usize>> {
    let mut found: Option<Range<usize>> = None;
    let mut value: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for segment in path.segments() {
        let next = match (segment, table, value) {
            (Segment::Key(key), Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                .map(|(_, v)| v),
            (Segment::Index { index, .. }, _, Some(DeValue::Array(array))) => array.get(*index),
            _ => None,
        };
        let Some(next) = next else { break };
        found = Some(next.span());
        value = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    found
}

/// Considers `span` for `path`: keeps the smallest containing span, the deeper path on a tie.
fn consider(
    span: Range<usize>,
    path: &FieldPath,
    target: &Range<usize>,
    best: &mut Option<(usize, usize, FieldPath)>,
) {
    let contains = span.start <= target.start && target.end <= span.end;
    if !contains {
        return;
    }
    let len = span.end - span.start;
    let depth = path.segments().len();
    let better = match best {
        None => true,
        Some((best_len, best_depth, _)) => {
            len < *best_len || (len == *best_len && depth > *best_depth)
        }
    };
    if better {
        *best = Some((len, depth, path.clone()));
    }
}

fn walk_table(
    table: &DeTable<'_>,
    path: &mut FieldPath,
    target: &Range<usize>,
    best: &mut Option<(usize, usize, FieldPath)>,
) {
    for (key, value) in table.iter() {
        let child = path.key(key.get_ref());
        consider(key.span(), &child, target, best);
        walk_value(value, &child, target, best);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &FieldPath,
    target: &Range<usize>,
    best: &mut Option<(usize, usize, FieldPath)>,
) {
    consider(value.span(), path, target, best);
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, &mut path.clone(), target, best),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                let mut child = path.clone();
                child.push(Segment::Index { index: i, id: None });
                walk_value(item, &child, target, best);
            }
        }
        _ => {}
    }
}
