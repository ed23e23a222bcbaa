//! What an operation costs to validate and run, counted before async-graphql sees it.
//!
//! async-graphql's depth and complexity visitors inline every fragment spread, so a document
//! of a few kilobytes whose fragments each spread the next one twice costs 2^n visits before
//! any limit applies. Here each fragment is tallied once and its tally reused at every spread,
//! so the count is linear in the document, and it stops at the first limit passed. Only an
//! operation that passes reaches async-graphql's own (inlining) validation, whose work is then
//! bounded by `fields`.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The limits this pass enforces.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub aliases: usize,
    pub root_fields: usize,
    /// Fields once every fragment is expanded: each costs at least 1 in the complexity count,
    /// so an operation over the complexity limit in fields is over it in cost too.
    pub fields: usize,
    pub fragments: usize,
}

/// Why an operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Aliases(usize),
    RootFields(usize),
    Fields(usize),
    Fragments(usize),
    /// A fragment that spreads itself, directly or through others.
    Cycle(String),
}

impl Refusal {
    /// The client's message, with the limit passed.
    pub fn message(&self, b: &Bounds) -> String {
        match self {
            Refusal::Aliases(n) => {
                format!(
                    "the operation uses more than {n} aliases; the limit is {}",
                    b.aliases
                )
            }
            Refusal::RootFields(n) => format!(
                "the operation selects more than {n} root fields; the limit is {}",
                b.root_fields
            ),
            Refusal::Fields(n) => format!(
                "the operation selects more than {n} fields once its fragments are expanded; the limit is {}",
                b.fields
            ),
            Refusal::Fragments(n) => format!(
                "the document defines {n} fragments; the limit is {}",
                b.fragments
            ),
            Refusal::Cycle(name) => format!("fragment `{name}` spreads itself"),
        }
    }

    /// A cycle is a malformed document; the rest are limits.
    pub fn is_limit(&self) -> bool {
        !matches!(self, Refusal::Cycle(_))
    }
}

/// Counts, saturating: a count past any limit is refused before it can overflow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    aliases: usize,
    /// Fields directly in the selection set (root fields, when it is the operation's).
    top: usize,
    fields: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.top = self.top.saturating_add(other.top);
        self.fields = self.fields.saturating_add(other.fields);
    }
}

enum Memo {
    InProgress,
    Done(Tally),
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    bounds: Bounds,
    memo: HashMap<&'a str, Memo>,
}

impl<'a> Counter<'a> {
    fn check(&self, t: &Tally) -> Result<(), Refusal> {
        if t.aliases > self.bounds.aliases {
            return Err(Refusal::Aliases(self.bounds.aliases));
        }
        if t.fields > self.bounds.fields {
            return Err(Refusal::Fields(self.bounds.fields));
        }
        Ok(())
    }

    fn set(&mut self, set: &'a SelectionSet) -> Result<Tally, Refusal> {
        let mut t = Tally::default();
        for sel in &set.items {
            match &sel.node {
                Selection::Field(f) => {
                    let inner = self.set(&f.node.selection_set.node)?;
                    t.aliases = t
                        .aliases
                        .saturating_add(usize::from(f.node.alias.is_some()))
                        .saturating_add(inner.aliases);
                    t.fields = t.fields.saturating_add(1).saturating_add(inner.fields);
                    t.top = t.top.saturating_add(1);
                }
                Selection::InlineFragment(i) => t.add(self.set(&i.node.selection_set.node)?),
                Selection::FragmentSpread(s) => t.add(self.fragment(&s.node.fragment_name.node)?),
            }
            self.check(&t)?;
        }
        Ok(t)
    }

    fn fragment(&mut self, name: &'a str) -> Result<Tally, Refusal> {
        match self.memo.get(name) {
            Some(Memo::Done(t)) => return Ok(*t),
            Some(Memo::InProgress) => return Err(Refusal::Cycle(name.to_owned())),
            None => {}
        }
        // An unknown fragment is reported by validation, which names it.
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(Tally::default());
        };
        self.memo.insert(name, Memo::InProgress);
        let t = self.set(&def.node.selection_set.node)?;
        self.memo.insert(name, Memo::Done(t));
        Ok(t)
    }
}

/// Checks the operation whose selection set is `root` against `bounds`, visiting each
/// fragment of `doc` once at most.
pub fn check(doc: &ExecutableDocument, root: &SelectionSet, bounds: Bounds) -> Result<(), Refusal> {
    if doc.fragments.len() > bounds.fragments {
        return Err(Refusal::Fragments(doc.fragments.len()));
    }
    let mut c = Counter {
        doc,
        bounds,
        memo: HashMap::new(),
    };
    let t = c.set(root)?;
    if t.top > bounds.root_fields {
        return Err(Refusal::RootFields(bounds.root_fields));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use async_graphql::parser::types::DocumentOperations;

    const WIDE: Bounds = Bounds {
        aliases: 1000,
        root_fields: 1000,
        fields: 1_000_000,
        fragments: 1000,
    };

    fn run(q: &str, b: Bounds) -> Result<(), Refusal> {
        let doc = parse_query(q).unwrap();
        let root = match &doc.operations {
            DocumentOperations::Single(op) => op.node.selection_set.node.clone(),
            DocumentOperations::Multiple(ops) => {
                ops.values().next().unwrap().node.selection_set.node.clone()
            }
        };
        check(&doc, &root, b)
    }

    /// `levels` fragments, each spreading the next twice: 2^levels leaves.
    fn explosion(levels: usize) -> String {
        let mut q = String::from("query { ...F0 }");
        for i in 0..levels {
            q += &format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1);
        }
        q += &format!(" fragment F{levels} on Query {{ __typename }}");
        q
    }

    #[test]
    fn counts_aliases_and_roots_through_fragments() {
        let q = "query { a: regions { code } b: regions { c: code } ...F } fragment F on Query { d: regions { code } }";
        assert_eq!(
            run(q, Bounds { aliases: 3, ..WIDE }),
            Err(Refusal::Aliases(3))
        );
        assert_eq!(run(q, Bounds { aliases: 4, ..WIDE }), Ok(()));
        assert_eq!(
            run(
                q,
                Bounds {
                    root_fields: 2,
                    ..WIDE
                }
            ),
            Err(Refusal::RootFields(2))
        );
        assert_eq!(
            run(
                q,
                Bounds {
                    root_fields: 3,
                    ..WIDE
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn each_spread_counts_again() {
        // 2^10 = 1024 leaves plus 2 * (2^10 - 1) spreads' fields: none; only leaves are fields.
        assert_eq!(
            run(
                &explosion(10),
                Bounds {
                    fields: 1023,
                    root_fields: 10_000,
                    ..WIDE
                }
            ),
            Err(Refusal::Fields(1023))
        );
        assert_eq!(
            run(
                &explosion(10),
                Bounds {
                    fields: 1024,
                    root_fields: 10_000,
                    ..WIDE
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn a_forty_level_explosion_is_refused_without_expanding_it() {
        // Expanded, this is 2^40 fields: only memoisation lets the test finish at all.
        let r = run(&explosion(40), WIDE);
        assert!(matches!(r, Err(Refusal::Fields(_))), "{r:?}");
    }

    #[test]
    fn a_cycle_is_named() {
        let q = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert_eq!(run(q, WIDE), Err(Refusal::Cycle("A".into())));
    }

    #[test]
    fn too_many_fragments() {
        let r = run(
            &explosion(10),
            Bounds {
                fragments: 5,
                ..WIDE
            },
        );
        assert_eq!(r, Err(Refusal::Fragments(11)));
    }
}
