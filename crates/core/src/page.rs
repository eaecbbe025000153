//! Keyset pagination: `limit` + opaque `cursor` in, items + `next_cursor` out.

/// The largest page any list returns.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// The page size when the client gives none.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Which page to read. The cursor is the id of the last item of the previous page; lists are
/// ordered newest first, so the next page holds the items with smaller ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// Items per page, 1..=[`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Continue after this item.
    pub after: Option<C>,
}

impl<C> PageRequest<C> {
    /// The first page of `limit` items, the limit clamped to 1..=[`MAX_PAGE_LIMIT`].
    #[must_use]
    pub fn first(limit: u32) -> Self {
        Self { limit: limit.clamp(1, MAX_PAGE_LIMIT), after: None }
    }
}

impl<C> Default for PageRequest<C> {
    fn default() -> Self {
        Self::first(DEFAULT_PAGE_LIMIT)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row, if present, only proves
    /// that another page exists and is dropped.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> C) -> Self {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&cursor_of)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_yields_a_cursor_only_when_more_rows_exist() {
        let p = Page::from_overfetch(vec![5, 4, 3], 2, |x| *x);
        assert_eq!(p.items, vec![5, 4]);
        assert_eq!(p.next, Some(4));
        let p = Page::from_overfetch(vec![5, 4], 2, |x| *x);
        assert_eq!(p.next, None);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(PageRequest::<u8>::first(0).limit, 1);
        assert_eq!(PageRequest::<u8>::first(1000).limit, MAX_PAGE_LIMIT);
    }
}
