//! Per-link state found by link id: a dense table of this node's links and an index from every
//! possible link id into it, built once. Each worker's real-time and reliable link state use it.

use weft_shared::DropReason;
use weft_shared::ids::{LinkId, MAX_LINKS};

/// `T` for each of a node's links (module doc).
pub struct LinkSlots<T> {
    /// Index into `items` per link id, `u16::MAX` for links this node does not have.
    slot_of: Box<[u16]>,
    items: Box<[T]>,
}

impl<T> LinkSlots<T> {
    /// One `make(id, value)` per link of `links`; a repeated or out-of-range id is skipped.
    pub fn new<V>(
        links: impl IntoIterator<Item = (LinkId, V)>,
        mut make: impl FnMut(LinkId, V) -> T,
    ) -> Self {
        let mut slot_of = vec![u16::MAX; usize::from(MAX_LINKS)].into_boxed_slice();
        let mut items = Vec::new();
        for (id, value) in links {
            let Some(slot) = slot_of.get_mut(usize::from(id.get())) else {
                continue;
            };
            if *slot != u16::MAX {
                continue;
            }
            *slot = items.len() as u16;
            items.push(make(id, value));
        }
        LinkSlots {
            slot_of,
            items: items.into_boxed_slice(),
        }
    }

    /// The state of link `id`, or [`DropReason::UnknownLink`].
    pub fn get_mut(&mut self, id: LinkId) -> Result<&mut T, DropReason> {
        let slot = self
            .slot_of
            .get(usize::from(id.get()))
            .copied()
            .unwrap_or(u16::MAX);
        self.items
            .get_mut(usize::from(slot))
            .ok_or(DropReason::UnknownLink(id.get()))
    }

    /// Every link's state.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Every link's state, mutably.
    pub fn iter_mut(&mut self) -> core::slice::IterMut<'_, T> {
        self.items.iter_mut()
    }
}
