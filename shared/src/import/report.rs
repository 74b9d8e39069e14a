//! The closing summary of an import: per kind of object, how many the source held, how many were
//! written, found equal, found in conflict or skipped; then each conflict and skip with why.

use std::collections::BTreeMap;
use std::fmt;

/// The kinds of object an import brings over, in the order it writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Role,
    Customer,
    Project,
    User,
    Grant,
    EndedGrant,
    Invitation,
    Request,
    Review,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Role,
        Kind::Customer,
        Kind::Project,
        Kind::User,
        Kind::Grant,
        Kind::EndedGrant,
        Kind::Invitation,
        Kind::Request,
        Kind::Review,
    ];

    /// The plural shown in the summary and on the progress bar.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Role => "roles",
            Kind::Customer => "customers",
            Kind::Project => "projects",
            Kind::User => "users",
            Kind::Grant => "grants",
            Kind::EndedGrant => "ended grants",
            Kind::Invitation => "invitations",
            Kind::Request => "requests",
            Kind::Review => "reviews",
        }
    }
}

/// The counts of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Row {
    /// Objects of this kind the source held.
    pub read: usize,
    /// Written (in a dry run: would be written).
    pub created: usize,
    /// There already, equal.
    pub unchanged: usize,
    /// There already with other content, or holding what this one needs (a name, an address).
    pub conflicting: usize,
    /// Not imported: what it depends on is not there, or this product does not serve it.
    pub skipped: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    pub rows: BTreeMap<Kind, Row>,
    /// `<object>: <why>` for each conflict.
    pub conflicts: Vec<String>,
    /// `<object>: <why>` for each skipped object.
    pub skipped: Vec<String>,
    /// In a dry run, each object that would be written.
    pub changes: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn row(&self, kind: Kind) -> Row {
        self.rows.get(&kind).copied().unwrap_or_default()
    }

    pub(super) fn row_mut(&mut self, kind: Kind) -> &mut Row {
        self.rows.entry(kind).or_default()
    }

    pub(super) fn created(&mut self, kind: Kind, what: &str) {
        self.row_mut(kind).created += 1;
        if self.dry_run {
            self.changes.push(format!("create {what}"));
        }
    }

    pub(super) fn unchanged(&mut self, kind: Kind) {
        self.row_mut(kind).unchanged += 1;
    }

    pub(super) fn conflict(&mut self, kind: Kind, what: &str, why: &str) {
        self.row_mut(kind).conflicting += 1;
        self.conflicts.push(format!("{what}: {why}"));
    }

    pub(super) fn skip(&mut self, kind: Kind, what: &str, why: &str) {
        self.row_mut(kind).skipped += 1;
        self.skipped.push(format!("{what}: {why}"));
    }

    /// Every kind together.
    pub fn total(&self) -> Row {
        self.rows.values().fold(Row::default(), |sum, row| Row {
            read: sum.read + row.read,
            created: sum.created + row.created,
            unchanged: sum.unchanged + row.unchanged,
            conflicting: sum.conflicting + row.conflicting,
            skipped: sum.skipped + row.skipped,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let created = if self.dry_run { "would create" } else { "created" };
        writeln!(
            f,
            "{:<14} {:>8} {:>12} {:>10} {:>12} {:>8}",
            "", "read", created, "unchanged", "conflicting", "skipped"
        )?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, row: Row| {
            writeln!(
                f,
                "{:<14} {:>8} {:>12} {:>10} {:>12} {:>8}",
                name, row.read, row.created, row.unchanged, row.conflicting, row.skipped
            )
        };
        for kind in Kind::ALL {
            line(f, kind.plural(), self.row(kind))?;
        }
        line(f, "total", self.total())?;
        for (title, lines) in [
            ("conflicts", &self.conflicts),
            ("skipped", &self.skipped),
            ("notes", &self.notes),
        ] {
            if !lines.is_empty() {
                writeln!(f, "\n{title}:")?;
                for text in lines {
                    writeln!(f, "  {text}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_kind_and_lists_why() {
        let mut report = Report::default();
        report.row_mut(Kind::User).read = 2;
        report.created(Kind::User, "user a");
        report.conflict(Kind::User, "user b", "the username is taken here by user c");
        report.notes.push("no secrets".into());
        let text = report.to_string();
        assert!(text.contains("created"));
        assert!(text.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == ["users", "2", "1", "0", "1", "0"]));
        assert!(text.contains("user b: the username is taken here by user c"));
        assert!(text.contains("notes:\n  no secrets"));
        assert_eq!(report.total().conflicting, 1);
        assert!(report.changes.is_empty(), "changes are listed in dry runs only");
    }
}
