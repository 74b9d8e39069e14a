//! Query parameters and Waldur's page-number pagination (`page`, `page_size`).

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 300;
const INVALID_PAGE: &str = "Invalid page.";

/// Decoded query parameters in the order they came; keys may repeat (`?o=a&o=b`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Django's boolean filter: `true`/`false`/`1`/`0` in any case; anything else means
    /// "no filter", as Waldur does.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)?.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    /// The ordering fields of `o`, each checked against `allowed` (without its `-`).
    pub fn ordering(&self, allowed: &[&str]) -> Result<Vec<(String, bool)>> {
        let mut fields = Vec::new();
        for value in self.get_all("o") {
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, descending) = match part.strip_prefix('-') {
                    Some(name) => (name, true),
                    None => (part, false),
                };
                if !allowed.contains(&name) {
                    return Err(Error::field(
                        "o",
                        format!("Select a valid choice. {part} is not one of the available choices."),
                    ));
                }
                fields.push((name.to_owned(), descending));
            }
        }
        Ok(fields)
    }

    /// The `field=` selection: only known names count; none known means all fields.
    pub fn field_selection<'a>(&self, known: &[&'a str]) -> Option<Vec<&'a str>> {
        let chosen: Vec<&'a str> = self
            .get_all("field")
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(|name| known.iter().copied().find(|k| *k == name.trim()))
            .collect();
        (!chosen.is_empty()).then_some(chosen)
    }
}

/// The direction a list is read in, by the sort key of its index partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

impl Order {
    /// The direction of a list kept in creation order, for `o=` (checked already): `default`
    /// without one, that of `created` or `-created` alone; none for any other ordering, which
    /// the list sorts itself.
    pub fn of_created(ordering: &[(String, bool)], default: Order) -> Option<Order> {
        match ordering {
            [] => Some(default),
            [(field, descending)] if field == "created" => Some(if *descending {
                Order::Descending
            } else {
                Order::Ascending
            }),
            _ => None,
        }
    }

    /// As `of_created`, and none where any of `filters` is among `params`: the direction a
    /// list is read in as a page of its index partition, if it is.
    pub fn unfiltered(
        params: &Params,
        filters: &[&str],
        ordering: &[(String, bool)],
        default: Order,
    ) -> Option<Order> {
        let filtered = filters.iter().any(|key| params.get(key).is_some());
        Order::of_created(ordering, default).filter(|_| !filtered)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSelector {
    Number(usize),
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub selector: PageSelector,
    pub size: usize,
}

impl PageRequest {
    /// An unusable `page_size` falls back to the default and a large one is capped, as in
    /// Waldur; an unusable `page` is a 404 "Invalid page.".
    pub fn from_params(params: &Params) -> Result<Self> {
        let size = params
            .get("page_size")
            .map(str::trim)
            // A size too large for usize is still a request for "as many as allowed".
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .map(|v| v.parse::<usize>().unwrap_or(usize::MAX))
            .filter(|size| *size > 0)
            .map_or(DEFAULT_PAGE_SIZE, |size| size.min(MAX_PAGE_SIZE));
        let selector = match params.get("page").map(str::trim) {
            None | Some("") => PageSelector::Number(1),
            Some("last") => PageSelector::Last,
            Some(text) => match text.parse::<usize>() {
                Ok(number) if number >= 1 => PageSelector::Number(number),
                _ => return Err(Error::NotFound(INVALID_PAGE.into())),
            },
        };
        Ok(PageRequest { selector, size })
    }
}

/// One page of a list, with what the `Link` header needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub number: usize,
    pub pages: usize,
    pub total: usize,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            number: self.number,
            pages: self.pages,
            total: self.total,
        }
    }
}

impl<T> Page<T> {
    /// Page `number` of a list of `total` read on its own (`items`); a page past the end is a
    /// 404, as in `paginate`.
    pub fn numbered(items: Vec<T>, number: usize, size: usize, total: usize) -> Result<Self> {
        let pages = total.div_ceil(size).max(1);
        if number > pages {
            return Err(Error::NotFound(INVALID_PAGE.into()));
        }
        Ok(Page {
            items,
            number,
            pages,
            total,
        })
    }
}

/// Slices an in-memory list. Page 1 of an empty list exists; any other page past the end is
/// a 404, as in Django's paginator.
pub fn paginate<T>(all: Vec<T>, request: &PageRequest) -> Result<Page<T>> {
    let total = all.len();
    let pages = total.div_ceil(request.size).max(1);
    let number = match request.selector {
        PageSelector::Number(n) => n,
        PageSelector::Last => pages,
    };
    if number > pages {
        return Err(Error::NotFound(INVALID_PAGE.into()));
    }
    let items = all
        .into_iter()
        .skip((number - 1) * request.size)
        .take(request.size)
        .collect();
    Ok(Page {
        items,
        number,
        pages,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn page_size_falls_back_and_caps() {
        for (given, expected) in [
            ("0", 10),
            ("-3", 10),
            ("abc", 10),
            ("3", 3),
            ("100000", 300),
            ("99999999999999999999", 300),
        ] {
            let request = PageRequest::from_params(&params(&[("page_size", given)])).unwrap();
            assert_eq!(request.size, expected, "{given}");
        }
    }

    #[test]
    fn bad_page_numbers_are_not_found() {
        for bad in ["0", "-1", "two", "99999999999999999999999"] {
            let err = PageRequest::from_params(&params(&[("page", bad)])).unwrap_err();
            assert_eq!(err, Error::NotFound("Invalid page.".into()), "{bad}");
        }
    }

    #[test]
    fn slices_like_django() {
        let request = PageRequest {
            selector: PageSelector::Number(4),
            size: 3,
        };
        let page = paginate((1..=12).collect::<Vec<_>>(), &request).unwrap();
        assert_eq!(
            (page.items, page.number, page.pages, page.total),
            (vec![10, 11, 12], 4, 4, 12)
        );
        let last = PageRequest {
            selector: PageSelector::Last,
            size: 5,
        };
        assert_eq!(
            paginate((1..=12).collect::<Vec<_>>(), &last).unwrap().items,
            vec![11, 12]
        );
        let empty = paginate(
            Vec::<u8>::new(),
            &PageRequest::from_params(&Params::default()).unwrap(),
        )
        .unwrap();
        assert_eq!((empty.total, empty.pages), (0, 1));
        let beyond = PageRequest {
            selector: PageSelector::Number(2),
            size: 10,
        };
        assert!(paginate(vec![1], &beyond).is_err());
    }

    #[test]
    fn ordering_is_checked() {
        let allowed = ["name", "users_count"];
        let ok = params(&[("o", "name"), ("o", "-users_count")])
            .ordering(&allowed)
            .unwrap();
        assert_eq!(ok, vec![("name".into(), false), ("users_count".into(), true)]);
        let err = params(&[("o", "bogus")]).ordering(&allowed).unwrap_err();
        assert_eq!(
            err,
            Error::field(
                "o",
                "Select a valid choice. bogus is not one of the available choices."
            )
        );
    }

    #[test]
    fn field_selection_ignores_unknown_names() {
        let known = ["uuid", "name"];
        assert_eq!(
            params(&[("field", "name"), ("field", "x")]).field_selection(&known),
            Some(vec!["name"])
        );
        assert_eq!(params(&[("field", "x")]).field_selection(&known), None);
    }
}
