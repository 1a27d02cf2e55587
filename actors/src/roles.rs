//! The roles of Stella's pipeline: each step of each kind names the role whose workers
//! run it, and `stella worker --roles` picks roles by these names.

use stella_store::mailbox::Role as MailboxRole;

/// A role of the pipeline (DESIGN.md "Supervision tree").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Fetcher,
    Analyzer,
    Evaluator,
    Sealer,
    Notifier,
    Exporter,
    /// Diagnostics (`noop` jobs).
    Diag,
}

impl Role {
    /// Every role, in pipeline order.
    pub const ALL: [Role; 7] = [
        Role::Fetcher,
        Role::Analyzer,
        Role::Evaluator,
        Role::Sealer,
        Role::Notifier,
        Role::Exporter,
        Role::Diag,
    ];

    /// The role's name in mailbox keys and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Fetcher => "fetcher",
            Role::Analyzer => "analyzer",
            Role::Evaluator => "evaluator",
            Role::Sealer => "sealer",
            Role::Notifier => "notifier",
            Role::Exporter => "exporter",
            Role::Diag => "diag",
        }
    }

    /// The mailbox's form of the role.
    pub fn mailbox(self) -> MailboxRole {
        MailboxRole::from_static(self.name())
    }
}

/// The name of every role, in pipeline order.
pub const ROLES: [&str; Role::ALL.len()] = {
    let mut names = [""; Role::ALL.len()];
    let mut i = 0;
    while i < Role::ALL.len() {
        names[i] = Role::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_is_a_valid_mailbox_role_and_listed_once() {
        for (role, name) in Role::ALL.iter().zip(ROLES) {
            assert_eq!(role.name(), name);
            assert!(MailboxRole::parse(name).is_ok(), "{name}");
        }
        let mut names = ROLES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ROLES.len());
    }
}
