//! Keyset pagination shared by the list operations.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Error, Result};

/// A page request as the API receives it: `first` items after an opaque
/// cursor.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub first: Option<i32>,
    pub after: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_count: i64,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_FIRST: i32 = 50;
    pub const MAX_FIRST: i32 = 1000;

    /// How many rows to fetch: one more than asked, to learn whether a next
    /// page exists.
    pub(super) fn limit(&self) -> Result<i64> {
        let first = self.first.unwrap_or(Self::DEFAULT_FIRST);
        if !(0..=Self::MAX_FIRST).contains(&first) {
            return Err(Error::InvalidInput(format!(
                "first must be between 0 and {}",
                Self::MAX_FIRST
            )));
        }
        Ok(i64::from(first) + 1)
    }

    /// The id the cursor points at, parsed into the listed type's id.
    pub(super) fn after_id<Id: std::str::FromStr>(&self) -> Result<Option<Id>> {
        let Some(cursor) = &self.after else {
            return Ok(None);
        };
        let invalid = || Error::InvalidInput("invalid cursor".into());
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        text.parse().map(Some).map_err(|_| invalid())
    }
}

impl<T> Page<T> {
    /// Builds a page from `limit` fetched rows (one more than asked).
    pub(super) fn from_rows(
        mut rows: Vec<T>,
        limit: i64,
        total_count: i64,
        id_of: impl Fn(&T) -> String,
    ) -> Self {
        let asked = usize::try_from(limit - 1).unwrap_or(0);
        let has_next_page = rows.len() > asked;
        rows.truncate(asked);
        let end_cursor = rows.last().map(|last| URL_SAFE_NO_PAD.encode(id_of(last)));
        Self {
            items: rows,
            total_count,
            has_next_page,
            end_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total_count: self.total_count,
            has_next_page: self.has_next_page,
            end_cursor: self.end_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() -> Result<()> {
        let id = UserId::new();
        let page = Page::from_rows(vec![id, UserId::new()], 2, 5, |i| i.to_string());
        assert!(page.has_next_page);
        assert_eq!(page.items, vec![id]);
        let request = PageRequest {
            first: Some(1),
            after: page.end_cursor,
        };
        assert_eq!(request.after_id::<UserId>()?, Some(id));
        let bad = PageRequest {
            first: None,
            after: Some("!!".into()),
        };
        assert!(bad.after_id::<UserId>().is_err());
        assert!(
            PageRequest {
                first: Some(-1),
                after: None
            }
            .limit()
            .is_err()
        );
        Ok(())
    }
}
