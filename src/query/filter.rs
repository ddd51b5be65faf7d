//! Which papers a query may return: date range, categories, excluded ids.

use crate::corpus::Paper;

/// An empty filter keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, inclusive.
    pub since: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, inclusive at its precision (`2020`
    /// keeps all of 2020).
    pub until: Option<String>,
    /// Any of these; `cs` matches `cs.CL`, `cs.CL` matches only itself.
    pub categories: Vec<String>,
}

/// Validates a `YYYY[-MM[-DD]]` bound: the shape, then the calendar (a
/// month 01-12, a day that month has), so that `2026-13` is an error
/// rather than a filter that silently keeps nothing.
pub fn parse_date_bound(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let widths = [4, 2, 2];
    let shaped = !parts.is_empty()
        && parts.len() <= 3
        && parts
            .iter()
            .zip(widths)
            .all(|(p, w)| p.len() == w && p.bytes().all(|b| b.is_ascii_digit()));
    if !shaped {
        return Err(format!(
            "{s:?} is not a date: expected YYYY, YYYY-MM or YYYY-MM-DD"
        ));
    }
    // All digits, at most four: these parse.
    let num = |p: &str| p.parse::<u32>().unwrap_or(0);
    match parts[..] {
        [_, m, ..] if !(1..=12).contains(&num(m)) => {
            Err(format!("{s:?} is not a date: month {m} is not 01-12"))
        }
        [y, m, d] if chrono::NaiveDate::from_ymd_opt(num(y) as i32, num(m), num(d)).is_none() => {
            Err(format!("{s:?} is not a date: {y}-{m} has no day {d}"))
        }
        _ => Ok(s.to_string()),
    }
}

impl Filter {
    /// True when the filter sets nothing, so every paper passes.
    pub fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.categories.is_empty()
    }

    /// Whether `p` passes. With a date bound set, a paper without a date is
    /// rejected, since it cannot be placed in the range.
    pub fn keep(&self, p: &Paper) -> bool {
        self.keep_facts(p.date.as_deref(), p.categories.iter().map(String::as_str))
    }

    /// [`Filter::keep`] for a paper's date and categories alone, which a
    /// library keeps without parsing the paper.
    pub fn keep_facts<'a>(
        &self,
        date: Option<&str>,
        mut categories: impl Iterator<Item = &'a str>,
    ) -> bool {
        if self.since.is_some() || self.until.is_some() {
            // Papers without a date cannot be placed in a range.
            let Some(date) = date else {
                return false;
            };
            // Compare at the bound's precision: "2020-05-01" is within
            // since "2020" and until "2020-05".
            let at = |bound: &str| date.get(..bound.len()).unwrap_or(date).to_string();
            if let Some(s) = &self.since {
                if at(s).as_str() < s.as_str() {
                    return false;
                }
            }
            if let Some(u) = &self.until {
                if at(u).as_str() > u.as_str() {
                    return false;
                }
            }
        }
        self.categories.is_empty()
            || categories.any(|c| {
                self.categories.iter().any(|want| {
                    c == want
                        || c.strip_prefix(want.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(date: Option<&str>, cats: &[&str]) -> Paper {
        Paper {
            id: "x".into(),
            title: "t".into(),
            abstract_text: "a".into(),
            authors: vec![],
            categories: cats.iter().map(|s| s.to_string()).collect(),
            date: date.map(str::to_string),
            url: None,
            ..Default::default()
        }
    }

    #[test]
    fn date_bounds_are_inclusive_at_their_precision() {
        let f = Filter {
            since: Some("2020".into()),
            until: Some("2021-03".into()),
            ..Filter::default()
        };
        assert!(f.keep(&paper(Some("2020-01-01"), &[])));
        assert!(f.keep(&paper(Some("2021-03-31"), &[])));
        assert!(!f.keep(&paper(Some("2021-04-01"), &[])));
        assert!(!f.keep(&paper(Some("2019-12-31"), &[])));
        assert!(!f.keep(&paper(None, &[])));
    }

    #[test]
    fn categories_match_exactly_or_by_archive() {
        let f = Filter {
            categories: vec!["cs".into(), "stat.ML".into()],
            ..Filter::default()
        };
        assert!(f.keep(&paper(None, &["cs.CL"])));
        assert!(f.keep(&paper(None, &["math.OC", "stat.ML"])));
        assert!(!f.keep(&paper(None, &["csx.AB", "stat.ME"])));
    }

    #[test]
    fn date_bounds_are_validated() {
        assert!(parse_date_bound("2020").is_ok());
        assert!(parse_date_bound("2020-05-01").is_ok());
        assert!(parse_date_bound("20").is_err());
        assert!(parse_date_bound("2020/05").is_err());
        assert!(parse_date_bound("2020-5").is_err());
    }

    #[test]
    fn impossible_dates_are_refused_by_name() {
        for ok in ["2024-02-29", "2026-12", "2026-01-31", "0001-01-01"] {
            assert_eq!(parse_date_bound(ok).as_deref(), Ok(ok));
        }
        for (bad, says) in [
            ("2026-13", "month 13"),
            ("2026-00", "month 00"),
            ("2026-99-99", "month 99"),
            ("2020-02-30", "no day 30"),
            ("2023-02-29", "no day 29"),
            ("2026-04-31", "no day 31"),
            ("2026-01-00", "no day 00"),
        ] {
            let err = parse_date_bound(bad).unwrap_err();
            assert!(err.contains(bad) && err.contains(says), "{bad}: {err}");
        }
    }
}
