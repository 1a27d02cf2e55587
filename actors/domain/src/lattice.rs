//! The K4 lattice (Belnap's four values) that joins claims about a finding.
//!
//! Each question about a (vulnerability, component) pair gets one value: ⊥ nobody said
//! anything, `True`, `False`, or ⊤ sources disagree. Joining is the least upper bound in
//! the information order (⊥ ⊔ x = x, True ⊔ False = ⊤, ⊤ absorbs), so the result does not
//! depend on the order claims arrive in, and a conflict stays visible instead of being
//! settled by silent source precedence. Policy rules decide what a conflict means.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One value of the K4 lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum K4 {
    /// ⊥: no claim.
    Unknown,
    True,
    False,
    /// ⊤: claims disagree.
    Conflict,
}

impl K4 {
    /// The least upper bound of `self` and `other`.
    #[must_use]
    pub fn join(self, other: K4) -> K4 {
        match (self, other) {
            (K4::Unknown, x) | (x, K4::Unknown) => x,
            (a, b) if a == b => a,
            _ => K4::Conflict,
        }
    }

    pub fn from_bool(value: bool) -> K4 {
        if value {
            K4::True
        } else {
            K4::False
        }
    }

    /// The symbol used in explain traces.
    pub fn symbol(self) -> &'static str {
        match self {
            K4::Unknown => "⊥",
            K4::True => "true",
            K4::False => "false",
            K4::Conflict => "⊤",
        }
    }
}

impl fmt::Display for K4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A question the claims about a finding answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Question {
    /// Is the vulnerable component present (the SBOM lists it, in an affected version)?
    Present,
    /// Does the vulnerability apply here (exploitable in this product), as VEX says?
    Applies,
    /// Is the vulnerability fixed in this component?
    Fixed,
    /// Is it mitigated (not exploitable here)?
    Mitigated,
}

impl Question {
    pub const ALL: [Question; 4] = [
        Question::Present,
        Question::Applies,
        Question::Fixed,
        Question::Mitigated,
    ];
}

/// One source's answer to one question, with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim {
    pub question: Question,
    pub value: bool,
    /// Where the claim comes from: an SBOM component, an advisory observation, a VEX
    /// statement (`vex:<document digest>#<pointer>`).
    pub evidence: String,
    /// What the evidence is, for people, where the reference alone does not say: a CSAF
    /// statement's document, tracking id and version, and product id. Absent otherwise,
    /// so other claims serialize (and hash) as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
}

/// The joined answers for one finding, with every claim that fed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub values: BTreeMap<Question, K4>,
    pub claims: Vec<Claim>,
}

impl Assessment {
    /// Joins `claims` in any order.
    pub fn from_claims(claims: impl IntoIterator<Item = Claim>) -> Self {
        let mut assessment = Assessment::default();
        for claim in claims {
            assessment.add(claim);
        }
        assessment
    }

    pub fn add(&mut self, claim: Claim) {
        let value = self.get(claim.question).join(K4::from_bool(claim.value));
        self.values.insert(claim.question, value);
        self.claims.push(claim);
    }

    pub fn get(&self, question: Question) -> K4 {
        self.values.get(&question).copied().unwrap_or(K4::Unknown)
    }

    /// The questions whose claims disagree.
    pub fn conflicts(&self) -> Vec<Question> {
        Question::ALL
            .into_iter()
            .filter(|q| self.get(*q) == K4::Conflict)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [K4; 4] = [K4::Unknown, K4::True, K4::False, K4::Conflict];

    #[test]
    fn join_is_a_semilattice_with_bottom_unknown_and_top_conflict() {
        for a in ALL {
            assert_eq!(a.join(a), a, "idempotent");
            assert_eq!(K4::Unknown.join(a), a, "⊥ is the identity");
            assert_eq!(K4::Conflict.join(a), K4::Conflict, "⊤ absorbs");
            for b in ALL {
                assert_eq!(a.join(b), b.join(a), "commutative");
                for c in ALL {
                    assert_eq!(a.join(b).join(c), a.join(b.join(c)), "associative");
                }
            }
        }
        assert_eq!(K4::True.join(K4::False), K4::Conflict);
    }

    #[test]
    fn disagreeing_sources_leave_a_visible_conflict_whatever_the_order() {
        let advisory = Claim {
            question: Question::Applies,
            value: true,
            evidence: "advisory:GO-2022-0001".into(),
            about: None,
        };
        let vex = Claim {
            question: Question::Applies,
            value: false,
            evidence: "vex:abc#/statements/0".into(),
            about: None,
        };
        let one = Assessment::from_claims([advisory.clone(), vex.clone()]);
        let other = Assessment::from_claims([vex, advisory]);
        assert_eq!(one.get(Question::Applies), K4::Conflict);
        assert_eq!(one.values, other.values);
        assert_eq!(one.conflicts(), vec![Question::Applies]);
        assert_eq!(one.get(Question::Fixed), K4::Unknown);
        assert_eq!(one.claims.len(), 2, "every claim is kept as evidence");
    }
}
