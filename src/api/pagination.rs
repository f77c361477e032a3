//! Paginated `/v1` lists: `page` and `per_page` read from the query, and the page answered as a
//! JSON array with the total in `X-Total-Count`.

use super::extract::Params;
use crate::domain::Error;
use crate::store::{Page, Slice};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

/// `page` (from 1) and `per_page` (default 50, at most 100) of a `/v1` list.
pub fn pagination(p: &Params) -> Result<(Slice, u64, u64), Error> {
    let page = match p.get("page") {
        None | Some("") => 1,
        Some(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Error::invalid("page", "page must be a whole number from 1"))?,
    };
    let per_page = match p.get("per_page") {
        None | Some("") => 50,
        Some(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                Error::invalid("per_page", "per_page must be a whole number from 1 to 100")
            })?,
    };
    let offset = (page - 1)
        .checked_mul(per_page)
        .ok_or_else(|| Error::invalid("page", "page is too large"))?;
    Ok((
        Slice {
            offset,
            limit: per_page,
        },
        page,
        per_page,
    ))
}

/// The slice of a list that the request's query asks for.
pub fn slice_of(req: &HttpRequest) -> Result<Slice, Error> {
    Ok(pagination(&Params::from_query(req)?)?.0)
}

/// A paginated list: the page as a JSON array, the total in `X-Total-Count`.
pub fn paged<T: Serialize>(items: Vec<T>, total: u64) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .json(items)
}

/// A page from the store, each item shown as `f` makes it.
pub fn page_of<T, V: Serialize>(page: Page<T>, f: impl Fn(&T) -> V) -> HttpResponse {
    paged(page.items.iter().map(f).collect(), page.total)
}

/// The `slice` of a list held whole in memory, with its total.
pub fn page_in<T>(all: Vec<T>, slice: Slice) -> Page<T> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(slice.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(slice.limit).unwrap_or(usize::MAX))
        .collect();
    Page { items, total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_in_memory_counts_every_item_and_holds_its_slice() {
        let page = page_in(
            (1..=7).collect::<Vec<u32>>(),
            Slice {
                offset: 5,
                limit: 5,
            },
        );
        assert_eq!((page.items, page.total), (vec![6, 7], 7));
        let past = page_in(
            vec![1u32],
            Slice {
                offset: u64::MAX,
                limit: 50,
            },
        );
        assert_eq!((past.items.len(), past.total), (0, 1));
    }
}
