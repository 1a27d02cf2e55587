//! CSAF 2.0 documents (`csaf_vex`, `csaf_security_advisory`, and any other category with
//! product status) read into the VEX statement model.
//!
//! The product tree is walked whole: branches (a `product_version` branch names an exact
//! version, a `product_version_range` branch a `vers:` range), `full_product_names` and
//! relationships (`default_component_of`, `installed_on`, ...). Each product resolves to
//! the purl of its `product_identification_helper`; a relationship's product without a
//! helper of its own is its `product_reference`, the component, since that is what an
//! SBOM lists. A product that resolves to no purl (a CPE, or nothing) becomes
//! [`Product::Unidentified`]: kept and counted, never matched.
//!
//! `product_status` maps to statuses: `known_not_affected` → not affected (its flag is the
//! justification, an `impact` threat the detail), `known_affected`, `first_affected`,
//! `last_affected` → affected, `fixed`, `first_fixed` → fixed, `under_investigation`.
//! `recommended` is advice, not a status (the same product is normally listed as fixed):
//! it makes no statement.
//!
//! What the JSON schema and CSAF's mandatory tests require of what is read here is checked
//! here, naming the JSON pointer: the document's identity (tracking id, version, status,
//! dates), product ids defined once and every referenced id defined (6.1.1, 6.1.2),
//! no cyclic relationships (6.1.4), valid purls, and in a `csaf_vex` document an impact
//! statement for each not-affected product (6.1.27.9). No I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{check_times, CsafOrigin, Product, VersionSel, VexStatement, VexStatus};
use crate::error::{pointer_token, InputError};

/// The `product_status` members and the status each means (`None`: no statement).
const STATUSES: &[(&str, Option<VexStatus>)] = &[
    ("first_affected", Some(VexStatus::Affected)),
    ("first_fixed", Some(VexStatus::Fixed)),
    ("fixed", Some(VexStatus::Fixed)),
    ("known_affected", Some(VexStatus::Affected)),
    ("known_not_affected", Some(VexStatus::NotAffected)),
    ("last_affected", Some(VexStatus::Affected)),
    ("recommended", None),
    ("under_investigation", Some(VexStatus::UnderInvestigation)),
];

/// The flag labels CSAF 2.0 defines (the same words as OpenVEX's justifications).
const FLAG_LABELS: &[&str] = &[
    "component_not_present",
    "inline_mitigations_already_exist",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_not_present",
];

const RELATIONSHIP_CATEGORIES: &[&str] = &[
    "default_component_of",
    "external_component_of",
    "installed_on",
    "installed_with",
    "optional_component_of",
];

/// One defined product: where, and what identifies it.
#[derive(Debug, Clone)]
struct Definition {
    /// Pointer of its `full_product_name`.
    at: String,
    purl: Option<String>,
    cpe: Option<String>,
    versions: Vec<VersionSel>,
    /// A `product_version_range` whose name is not a `vers:` range: no version can be
    /// said to be in it, so the product has no usable identity.
    opaque_range: bool,
    /// For a relationship's product: (`product_reference`, `relates_to_product_reference`,
    /// pointer of the relationship).
    relationship: Option<(String, String, String)>,
}

/// What a product resolves to.
#[derive(Debug, Clone)]
struct Identity {
    purl: Option<String>,
    cpe: Option<String>,
    versions: Vec<VersionSel>,
}

fn err(at: impl Into<String>, message: impl Into<String>) -> InputError {
    InputError::new(at, message)
}

fn object<'a>(value: Option<&'a Value>, at: &str) -> Result<&'a Value, InputError> {
    match value {
        Some(v) if v.is_object() => Ok(v),
        Some(_) => Err(err(at, "must be an object")),
        None => Err(err(at, "missing")),
    }
}

fn string<'a>(value: &'a Value, key: &str, at: &str) -> Result<&'a str, InputError> {
    match value.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(err(
            format!("{at}/{}", pointer_token(key)),
            "must be a non-empty string",
        )),
        None => Err(err(format!("{at}/{}", pointer_token(key)), "missing")),
    }
}

fn array<'a>(value: &'a Value, key: &str, at: &str) -> Result<Option<&'a [Value]>, InputError> {
    match value.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(err(
            format!("{at}/{}", pointer_token(key)),
            "must be an array",
        )),
    }
}

/// A list of product ids (or group ids): non-empty, unique strings.
fn id_list<'a>(
    value: &'a Value,
    key: &str,
    at: &str,
) -> Result<Vec<(String, &'a str)>, InputError> {
    let Some(items) = array(value, key, at)? else {
        return Ok(Vec::new());
    };
    let at = format!("{at}/{}", pointer_token(key));
    if items.is_empty() {
        return Err(err(at, "must not be empty"));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (j, item) in items.iter().enumerate() {
        let here = format!("{at}/{j}");
        let id = item
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(&here, "must be a non-empty string"))?;
        if !seen.insert(id) {
            return Err(err(here, format!("{id:?} is listed twice")));
        }
        out.push((here, id));
    }
    Ok(out)
}

/// The document's identity and the checks the schema makes on it.
fn check_document(doc: &Value) -> Result<CsafOrigin, InputError> {
    let document = object(doc.get("document"), "/document")?;
    if document.get("csaf_version").and_then(Value::as_str) != Some("2.0") {
        return Err(err(
            "/document/csaf_version",
            "must be \"2.0\" (CSAF 2.0 is the version read)",
        ));
    }
    string(document, "category", "/document")?;
    let title = string(document, "title", "/document")?;
    let publisher = object(document.get("publisher"), "/document/publisher")?;
    let category = string(publisher, "category", "/document/publisher")?;
    if ![
        "coordinator",
        "discoverer",
        "other",
        "translator",
        "user",
        "vendor",
    ]
    .contains(&category)
    {
        return Err(err(
            "/document/publisher/category",
            format!("unknown publisher category {category:?}"),
        ));
    }
    string(publisher, "name", "/document/publisher")?;
    string(publisher, "namespace", "/document/publisher")?;
    let tracking = object(document.get("tracking"), "/document/tracking")?;
    let tracking_id = string(tracking, "id", "/document/tracking")?;
    let version = string(tracking, "version", "/document/tracking")?;
    let integer = version.bytes().all(|b| b.is_ascii_digit())
        && (version == "0" || !version.starts_with('0'));
    if !integer && semver::Version::parse(version).is_err() {
        return Err(err(
            "/document/tracking/version",
            format!("{version:?} is neither an integer version nor a semantic version"),
        ));
    }
    let status = string(tracking, "status", "/document/tracking")?;
    if !["draft", "final", "interim"].contains(&status) {
        return Err(err(
            "/document/tracking/status",
            format!("unknown status {status:?}; expected draft, final or interim"),
        ));
    }
    for key in ["current_release_date", "initial_release_date"] {
        string(tracking, key, "/document/tracking")?;
    }
    check_times(
        tracking,
        "/document/tracking",
        &["current_release_date", "initial_release_date"],
    )?;
    let history = array(tracking, "revision_history", "/document/tracking")?
        .ok_or_else(|| err("/document/tracking/revision_history", "missing"))?;
    if history.is_empty() {
        return Err(err(
            "/document/tracking/revision_history",
            "must list at least one revision",
        ));
    }
    for (i, revision) in history.iter().enumerate() {
        let at = format!("/document/tracking/revision_history/{i}");
        for key in ["date", "number", "summary"] {
            string(revision, key, &at)?;
        }
        check_times(revision, &at, &["date"])?;
    }
    Ok(CsafOrigin {
        title: title.to_owned(),
        tracking_id: tracking_id.to_owned(),
        tracking_version: version.to_owned(),
        product_id: String::new(),
    })
}

/// Reads a `full_product_name` at `at`: its id and identity.
fn full_product_name(
    value: &Value,
    at: &str,
    branch: Option<(&str, &str)>,
) -> Result<(String, Definition), InputError> {
    object(Some(value), at)?;
    string(value, "name", at)?;
    let id = string(value, "product_id", at)?.to_owned();
    let (mut purl, mut cpe) = (None, None);
    if let Some(helper) = value.get("product_identification_helper") {
        let here = format!("{at}/product_identification_helper");
        object(Some(helper), &here)?;
        if helper.get("purl").is_some() {
            let p = string(helper, "purl", &here)?;
            crate::purl::Purl::parse(p)
                .map_err(|e| err(format!("{here}/purl"), format!("not a package URL: {e}")))?;
            purl = Some(p.to_owned());
        }
        if helper.get("cpe").is_some() {
            cpe = Some(string(helper, "cpe", &here)?.to_owned());
        }
    }
    let mut versions = Vec::new();
    let mut opaque_range = false;
    match branch {
        // A version branch over a purl without one: the branch names the version.
        Some(("product_version", name)) => {
            let has_version = purl
                .as_deref()
                .and_then(|p| crate::purl::Purl::parse(p).ok())
                .is_some_and(|p| p.version().is_some());
            if !has_version {
                versions.push(VersionSel::Exact {
                    version: name.to_owned(),
                });
            }
        }
        Some(("product_version_range", name)) => {
            if name.starts_with("vers:") {
                if super::vers_versions(name).is_none() {
                    return Err(err(
                        format!("{}/name", at.trim_end_matches("/product")),
                        format!("{name:?} is not a valid vers range"),
                    ));
                }
                versions.push(VersionSel::Range {
                    vers: name.to_owned(),
                });
            } else {
                opaque_range = true;
            }
        }
        _ => {}
    }
    Ok((
        id,
        Definition {
            at: at.to_owned(),
            purl,
            cpe,
            versions,
            opaque_range,
            relationship: None,
        },
    ))
}

/// Every product the tree defines, by id; groups by id.
#[derive(Debug, Default)]
struct Tree {
    products: BTreeMap<String, Definition>,
    groups: BTreeMap<String, Vec<String>>,
}

impl Tree {
    fn define(&mut self, id: String, definition: Definition) -> Result<(), InputError> {
        if let Some(first) = self.products.get(&id) {
            return Err(err(
                format!("{}/product_id", definition.at),
                format!("product id {id:?} is defined twice (first at {})", first.at),
            ));
        }
        self.products.insert(id, definition);
        Ok(())
    }

    fn require(&self, id: &str, at: &str) -> Result<(), InputError> {
        if self.products.contains_key(id) {
            Ok(())
        } else {
            Err(err(
                at,
                format!("product id {id:?} is referenced but never defined in the product tree"),
            ))
        }
    }

    /// Product ids named by `product_ids` and `group_ids` of `value`, each checked.
    fn named(&self, value: &Value, at: &str) -> Result<Vec<String>, InputError> {
        let mut out = Vec::new();
        for (here, id) in id_list(value, "product_ids", at)? {
            self.require(id, &here)?;
            out.push(id.to_owned());
        }
        for (here, group) in id_list(value, "group_ids", at)? {
            let members = self.groups.get(group).ok_or_else(|| {
                err(
                    &here,
                    format!("group id {group:?} is referenced but never defined"),
                )
            })?;
            out.extend(members.iter().cloned());
        }
        Ok(out)
    }
}

fn walk_branches(tree: &mut Tree, branches: &[Value], at: &str) -> Result<(), InputError> {
    // Depth-first with an explicit stack: a hostile document cannot exhaust the call stack.
    let mut stack: Vec<(String, &Value)> = branches
        .iter()
        .enumerate()
        .rev()
        .map(|(i, b)| (format!("{at}/{i}"), b))
        .collect();
    while let Some((here, branch)) = stack.pop() {
        object(Some(branch), &here)?;
        let category = string(branch, "category", &here)?;
        let name = string(branch, "name", &here)?;
        if let Some(product) = branch.get("product") {
            let (id, definition) =
                full_product_name(product, &format!("{here}/product"), Some((category, name)))?;
            tree.define(id, definition)?;
        }
        if let Some(children) = array(branch, "branches", &here)? {
            for (i, child) in children.iter().enumerate().rev() {
                stack.push((format!("{here}/branches/{i}"), child));
            }
        }
    }
    Ok(())
}

fn read_tree(doc: &Value) -> Result<Tree, InputError> {
    let mut tree = Tree::default();
    let Some(product_tree) = doc.get("product_tree") else {
        return Ok(tree);
    };
    object(Some(product_tree), "/product_tree")?;
    if let Some(branches) = array(product_tree, "branches", "/product_tree")? {
        walk_branches(&mut tree, branches, "/product_tree/branches")?;
    }
    for (i, name) in array(product_tree, "full_product_names", "/product_tree")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let (id, definition) =
            full_product_name(name, &format!("/product_tree/full_product_names/{i}"), None)?;
        tree.define(id, definition)?;
    }
    let relationships = array(product_tree, "relationships", "/product_tree")?.unwrap_or_default();
    for (i, relationship) in relationships.iter().enumerate() {
        let at = format!("/product_tree/relationships/{i}");
        object(Some(relationship), &at)?;
        let category = string(relationship, "category", &at)?;
        if !RELATIONSHIP_CATEGORIES.contains(&category) {
            return Err(err(
                format!("{at}/category"),
                format!(
                    "unknown relationship category {category:?}; expected one of {}",
                    RELATIONSHIP_CATEGORIES.join(", ")
                ),
            ));
        }
        let reference = string(relationship, "product_reference", &at)?.to_owned();
        let relates_to = string(relationship, "relates_to_product_reference", &at)?.to_owned();
        let (id, mut definition) = full_product_name(
            relationship
                .get("full_product_name")
                .ok_or_else(|| err(format!("{at}/full_product_name"), "missing"))?,
            &format!("{at}/full_product_name"),
            None,
        )?;
        definition.relationship = Some((reference, relates_to, at));
        tree.define(id, definition)?;
    }
    // References are checked once every product is defined: a relationship may name a
    // product defined after it.
    for definition in tree.products.values() {
        if let Some((reference, relates_to, at)) = &definition.relationship {
            tree.require(reference, &format!("{at}/product_reference"))?;
            tree.require(relates_to, &format!("{at}/relates_to_product_reference"))?;
        }
    }
    for (i, group) in array(product_tree, "product_groups", "/product_tree")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("/product_tree/product_groups/{i}");
        object(Some(group), &at)?;
        let group_id = string(group, "group_id", &at)?.to_owned();
        let members = id_list(group, "product_ids", &at)?;
        if members.len() < 2 {
            return Err(err(
                format!("{at}/product_ids"),
                "a product group lists at least two products",
            ));
        }
        let mut ids = Vec::new();
        for (here, id) in members {
            tree.require(id, &here)?;
            ids.push(id.to_owned());
        }
        if tree.groups.insert(group_id.clone(), ids).is_some() {
            return Err(err(
                format!("{at}/group_id"),
                format!("group id {group_id:?} is defined twice"),
            ));
        }
    }
    check_cycles(&tree)?;
    Ok(tree)
}

/// Refuses a relationship that leads back to its own product through
/// `product_reference` or `relates_to_product_reference` (CSAF 6.1.4).
fn check_cycles(tree: &Tree) -> Result<(), InputError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let edges = |id: &str| -> Vec<(String, String)> {
        match tree.products.get(id).and_then(|d| d.relationship.as_ref()) {
            Some((reference, relates_to, at)) => vec![
                (reference.clone(), format!("{at}/product_reference")),
                (
                    relates_to.clone(),
                    format!("{at}/relates_to_product_reference"),
                ),
            ],
            None => Vec::new(),
        }
    };
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    for start in tree.products.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative depth-first search: (node, its edges, next edge index).
        marks.insert(start.clone(), Mark::Open);
        let mut stack = vec![(start.clone(), edges(start), 0usize)];
        while let Some((_, out, next)) = stack.last_mut() {
            let Some((to, at)) = out.get(*next).cloned() else {
                let (node, _, _) = stack.pop().unwrap_or_default();
                marks.insert(node, Mark::Done);
                continue;
            };
            *next += 1;
            match marks.get(&to) {
                Some(Mark::Open) => {
                    return Err(err(
                        at,
                        format!("cyclic relationship: product {to:?} is reached from itself"),
                    ))
                }
                Some(Mark::Done) => {}
                None => {
                    marks.insert(to.clone(), Mark::Open);
                    let next_edges = edges(&to);
                    stack.push((to, next_edges, 0));
                }
            }
        }
    }
    Ok(())
}

/// What `id` resolves to: its own helper's purl, else (a relationship's product) its
/// component's. Cycles were refused before, so this ends.
fn identity(tree: &Tree, id: &str) -> Option<Identity> {
    let mut current = tree.products.get(id)?;
    let mut cpe = current.cpe.clone();
    loop {
        if current.opaque_range {
            return Some(Identity {
                purl: None,
                cpe,
                versions: Vec::new(),
            });
        }
        if current.purl.is_some() {
            return Some(Identity {
                purl: current.purl.clone(),
                cpe: cpe.or_else(|| current.cpe.clone()),
                versions: current.versions.clone(),
            });
        }
        match &current.relationship {
            Some((reference, _, _)) => {
                current = tree.products.get(reference)?;
                cpe = cpe.or_else(|| current.cpe.clone());
            }
            None => {
                return Some(Identity {
                    purl: None,
                    cpe,
                    versions: Vec::new(),
                })
            }
        }
    }
}

/// Reads a CSAF 2.0 document (already parsed as JSON).
pub(super) fn parse_document(doc: &Value) -> Result<Vec<VexStatement>, InputError> {
    let origin = check_document(doc)?;
    let category = doc
        .pointer("/document/category")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_vex = category == "csaf_vex";
    let tree = read_tree(doc)?;
    let vulnerabilities = array(doc, "vulnerabilities", "")?.unwrap_or_default();
    if is_vex && doc.get("product_tree").is_none() {
        return Err(err(
            "/product_tree",
            "a csaf_vex document needs a product tree",
        ));
    }
    if is_vex && vulnerabilities.is_empty() {
        return Err(err(
            "/vulnerabilities",
            "a csaf_vex document needs at least one vulnerability",
        ));
    }
    let mut out = Vec::new();
    for (i, vulnerability) in vulnerabilities.iter().enumerate() {
        let at = format!("/vulnerabilities/{i}");
        object(Some(vulnerability), &at)?;
        let cve = match vulnerability.get("cve") {
            None => None,
            Some(_) => {
                let cve = string(vulnerability, "cve", &at)?;
                let well_formed = cve
                    .strip_prefix("CVE-")
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(year, n)| {
                        year.len() == 4
                            && year.bytes().all(|b| b.is_ascii_digit())
                            && n.len() >= 4
                            && n.bytes().all(|b| b.is_ascii_digit())
                    });
                if !well_formed {
                    return Err(err(format!("{at}/cve"), format!("{cve:?} is not a CVE id")));
                }
                Some(cve.to_owned())
            }
        };
        let mut ids = Vec::new();
        for (k, entry) in array(vulnerability, "ids", &at)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let here = format!("{at}/ids/{k}");
            string(entry, "system_name", &here)?;
            ids.push(string(entry, "text", &here)?.to_owned());
        }
        let mut names = cve.into_iter().chain(ids);
        let Some(vulnerability_id) = names.next() else {
            return Err(err(
                format!("{at}/cve"),
                "a vulnerability needs a `cve` or `ids` to be matched to findings",
            ));
        };
        let aliases: Vec<String> = names.collect();
        // Why each product is not affected: its flag, and the impact threat's details.
        let mut flags: BTreeMap<String, String> = BTreeMap::new();
        for (k, flag) in array(vulnerability, "flags", &at)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let here = format!("{at}/flags/{k}");
            object(Some(flag), &here)?;
            let label = string(flag, "label", &here)?;
            if !FLAG_LABELS.contains(&label) {
                return Err(err(
                    format!("{here}/label"),
                    format!(
                        "unknown flag label {label:?}; expected one of {}",
                        FLAG_LABELS.join(", ")
                    ),
                ));
            }
            check_times(flag, &here, &["date"])?;
            let named = tree.named(flag, &here)?;
            if named.is_empty() {
                return Err(err(&here, "a flag names `product_ids` or `group_ids`"));
            }
            for id in named {
                flags.entry(id).or_insert_with(|| label.to_owned());
            }
        }
        let mut impacts: BTreeMap<String, String> = BTreeMap::new();
        for (k, threat) in array(vulnerability, "threats", &at)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let here = format!("{at}/threats/{k}");
            object(Some(threat), &here)?;
            let category = string(threat, "category", &here)?;
            let details = string(threat, "details", &here)?;
            check_times(threat, &here, &["date"])?;
            for id in tree.named(threat, &here)? {
                if category == "impact" {
                    impacts.entry(id).or_insert_with(|| details.to_owned());
                }
            }
        }
        let mut remedies: BTreeMap<String, String> = BTreeMap::new();
        for (k, remediation) in array(vulnerability, "remediations", &at)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let here = format!("{at}/remediations/{k}");
            object(Some(remediation), &here)?;
            string(remediation, "category", &here)?;
            let details = string(remediation, "details", &here)?;
            check_times(remediation, &here, &["date"])?;
            for id in tree.named(remediation, &here)? {
                remedies.entry(id).or_insert_with(|| details.to_owned());
            }
        }
        for (k, score) in array(vulnerability, "scores", &at)?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let here = format!("{at}/scores/{k}");
            for (p, id) in id_list(score, "products", &here)? {
                tree.require(id, &p)?;
            }
        }
        let Some(status) = vulnerability.get("product_status") else {
            continue;
        };
        let status_at = format!("{at}/product_status");
        let members = status
            .as_object()
            .ok_or_else(|| err(&status_at, "must be an object"))?;
        for key in members.keys() {
            if !STATUSES.iter().any(|(name, _)| name == key) {
                return Err(err(
                    format!("{status_at}/{}", pointer_token(key)),
                    format!("unknown product status {key:?}"),
                ));
            }
        }
        for (key, meaning) in STATUSES {
            for (here, id) in id_list(status, key, &status_at)? {
                tree.require(id, &here)?;
                let Some(status) = *meaning else {
                    continue;
                };
                let justification = flags.get(id).cloned();
                let impact = impacts.get(id).cloned();
                if status == VexStatus::NotAffected
                    && is_vex
                    && justification.is_none()
                    && impact.is_none()
                {
                    return Err(err(
                        here,
                        format!(
                            "product {id:?} is known_not_affected without a flag or an impact threat saying why (CSAF 6.1.27.9)"
                        ),
                    ));
                }
                let detail = match status {
                    VexStatus::NotAffected => impact,
                    _ => remedies.get(id).cloned(),
                };
                let identity = identity(&tree, id).unwrap_or(Identity {
                    purl: None,
                    cpe: None,
                    versions: Vec::new(),
                });
                let product = match identity.purl {
                    Some(purl) => Product::Purl { purl },
                    None => Product::Unidentified {
                        id: id.to_owned(),
                        cpe: identity.cpe,
                    },
                };
                out.push(VexStatement {
                    vulnerability: vulnerability_id.clone(),
                    aliases: aliases.clone(),
                    product,
                    versions: identity.versions,
                    status,
                    justification: if status == VexStatus::NotAffected {
                        justification
                    } else {
                        None
                    },
                    detail,
                    pointer: here,
                    csaf: Some(CsafOrigin {
                        product_id: id.to_owned(),
                        ..origin.clone()
                    }),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::vex::{parse, without_component_identity};

    fn data(file: &str) -> Option<Vec<u8>> {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/vex/csaf")
            .join(file);
        match std::fs::read(&full) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                println!("skipping: {} not found", full.display());
                None
            }
        }
    }

    /// A minimal valid `csaf_vex` document around `product_tree` and `vulnerabilities`.
    fn vex_doc(product_tree: Value, vulnerabilities: Value) -> Vec<u8> {
        json!({
            "document": {
                "category": "csaf_vex",
                "csaf_version": "2.0",
                "publisher": {"category": "vendor", "name": "Acme PSIRT", "namespace": "https://acme.example"},
                "title": "Acme VEX",
                "tracking": {
                    "id": "ACME-VEX-7", "version": "3", "status": "final",
                    "current_release_date": "2024-05-01T00:00:00Z",
                    "initial_release_date": "2024-04-01T00:00:00Z",
                    "revision_history": [{"date": "2024-05-01T00:00:00Z", "number": "3", "summary": "third"}]
                }
            },
            "product_tree": product_tree,
            "vulnerabilities": vulnerabilities
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn every_oasis_example_reads_and_products_without_purls_are_kept() {
        // (file, statements, statuses in order of the first vulnerability's statements)
        let cases: &[(&str, usize)] = &[
            ("2022-evd-uc-01-f-001.json", 1),
            ("2022-evd-uc-01-na-001.json", 1),
            ("2022-evd-uc-01-ui-001.json", 1),
            ("2022-evd-uc-02-na-001.json", 19),
            ("2022-evd-uc-03-ms-001.json", 19),
            ("2022-evd-uc-04-001.json", 3),
            ("2022-evd-uc-05-001.json", 1),
            ("2022-evd-uc-07-001.json", 10),
            // CSAFPID-0011 is also `recommended`, which makes no statement.
            ("2022-evd-uc-08-001.json", 21),
            ("2022-evd-uc-09-001.json", 4),
            ("rhsa-2021_5217.json", 1),
            ("rhsa-2022_0011.json", 15),
        ];
        for (file, count) in cases {
            let Some(bytes) = data(file) else { return };
            let statements = parse(&bytes).unwrap();
            assert_eq!(statements.len(), *count, "{file}");
            // None of the OASIS examples names a purl: every statement is kept, and
            // counted as without a component identity.
            assert_eq!(without_component_identity(&statements), *count, "{file}");
            assert!(statements.iter().all(|s| s.csaf.is_some()), "{file}");
        }
        let Some(bytes) = data("2022-evd-uc-01-na-001.json") else {
            return;
        };
        let statement = &parse(&bytes).unwrap()[0];
        assert_eq!(statement.status, VexStatus::NotAffected);
        assert_eq!(statement.vulnerability, "CVE-2021-44228");
        assert_eq!(
            statement.detail.as_deref(),
            Some("Class with vulnerable code was removed before shipping.")
        );
        assert_eq!(
            statement.pointer,
            "/vulnerabilities/0/product_status/known_not_affected/0"
        );
        assert_eq!(
            statement.csaf.as_ref().unwrap().describe(),
            "CSAF 2022-EVD-UC-01-NA-001 version 1 (Example VEX Document Use Case 1 - Not Affected), product CSAFPID-0001"
        );
        // Case 3: every status of one product.
        let Some(bytes) = data("2022-evd-uc-03-ms-001.json") else {
            return;
        };
        let statuses: BTreeSet<VexStatus> =
            parse(&bytes).unwrap().iter().map(|s| s.status).collect();
        assert_eq!(statuses.len(), 4);
        // The Red Hat advisory's products are relationships: the telnet package as a
        // default component of each RHEL variant; the component is what is identified.
        let Some(bytes) = data("rhsa-2022_0011.json") else {
            return;
        };
        let statements = parse(&bytes).unwrap();
        assert_eq!(
            statements[0].product,
            Product::Unidentified {
                id: "7Server-7.6.AUS:telnet-1:0.17-65.el7_6.src".into(),
                cpe: None
            }
        );
        assert!(statements.iter().all(|s| s.status == VexStatus::Fixed));
        // The Cisco advisory (a csaf_base document of category "Cisco Security Advisory").
        let Some(bytes) = data("cisco-sa-20180328-smi2.json") else {
            return;
        };
        let statements = parse(&bytes).unwrap();
        assert!(statements.len() > 100);
        assert!(statements.iter().all(|s| s.status == VexStatus::Affected));
    }

    #[test]
    fn products_resolve_to_purls_through_branches_and_relationships() {
        let tree = json!({
            "branches": [{"category": "vendor", "name": "Acme", "branches": [
                {"category": "product_name", "name": "echo", "branches": [
                    {"category": "product_version", "name": "v4.1.0", "product": {
                        "name": "echo v4.1.0", "product_id": "ECHO-410",
                        "product_identification_helper": {"purl": "pkg:golang/github.com/labstack/echo/v4"}}},
                    {"category": "product_version_range", "name": "vers:golang/>=4.2.0|<4.9.0", "product": {
                        "name": "echo 4.2-4.9", "product_id": "ECHO-RANGE",
                        "product_identification_helper": {"purl": "pkg:golang/github.com/labstack/echo/v4"}}},
                    {"category": "product_version_range", "name": "all of the 4.x line", "product": {
                        "name": "echo 4.x", "product_id": "ECHO-4X",
                        "product_identification_helper": {"purl": "pkg:golang/github.com/labstack/echo/v4"}}}
                ]},
                {"category": "product_name", "name": "Appliance", "product": {
                    "name": "Acme Appliance", "product_id": "APPLIANCE",
                    "product_identification_helper": {"cpe": "cpe:2.3:a:acme:appliance:*:*:*:*:*:*:*:*"}}}
            ]}],
            "full_product_names": [{"name": "lib", "product_id": "LIB",
                "product_identification_helper": {"purl": "pkg:npm/left-pad@1.3.0"}}],
            "relationships": [{"category": "default_component_of",
                "full_product_name": {"name": "lib in appliance", "product_id": "APPLIANCE:LIB"},
                "product_reference": "LIB", "relates_to_product_reference": "APPLIANCE"}]
        });
        let vulnerabilities = json!([{"cve": "CVE-2022-40083",
            "ids": [{"system_name": "Go", "text": "GO-2022-1031"}],
            "product_status": {
                "known_not_affected": ["ECHO-410", "APPLIANCE:LIB"],
                "known_affected": ["ECHO-RANGE", "ECHO-4X", "APPLIANCE"]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "product_ids": ["ECHO-410"]}],
            "threats": [{"category": "impact", "details": "not shipped", "product_ids": ["APPLIANCE:LIB"]}]}]);
        let statements = parse(&vex_doc(tree, vulnerabilities)).unwrap();
        let by_id = |id: &str| {
            statements
                .iter()
                .find(|s| s.csaf.as_ref().unwrap().product_id == id)
                .unwrap()
        };
        let echo = by_id("ECHO-410");
        assert_eq!(
            echo.product,
            Product::Purl {
                purl: "pkg:golang/github.com/labstack/echo/v4".into()
            }
        );
        assert_eq!(
            echo.versions,
            vec![VersionSel::Exact {
                version: "v4.1.0".into()
            }]
        );
        assert_eq!(
            echo.justification.as_deref(),
            Some("vulnerable_code_not_in_execute_path")
        );
        assert!(echo.names("GO-2022-1031", &[]), "ids are aliases");
        assert_eq!(
            by_id("ECHO-RANGE").versions,
            vec![VersionSel::Range {
                vers: "vers:golang/>=4.2.0|<4.9.0".into()
            }]
        );
        // A range that is not `vers:` cannot be evaluated: no identity rather than
        // every version.
        assert!(matches!(
            by_id("ECHO-4X").product,
            Product::Unidentified { .. }
        ));
        assert_eq!(
            by_id("APPLIANCE").product,
            Product::Unidentified {
                id: "APPLIANCE".into(),
                cpe: Some("cpe:2.3:a:acme:appliance:*:*:*:*:*:*:*:*".into())
            }
        );
        // The relationship's product is its component.
        let lib = by_id("APPLIANCE:LIB");
        assert_eq!(
            lib.product,
            Product::Purl {
                purl: "pkg:npm/left-pad@1.3.0".into()
            }
        );
        assert_eq!(lib.detail.as_deref(), Some("not shipped"));
        assert_eq!(without_component_identity(&statements), 2);
    }

    #[test]
    fn invalid_documents_are_refused_naming_the_pointer() {
        let tree = || {
            json!({"full_product_names": [
                {"name": "a", "product_id": "A", "product_identification_helper": {"purl": "pkg:npm/a"}},
                {"name": "b", "product_id": "B"}]})
        };
        let refused = |doc: Vec<u8>| parse(&doc).unwrap_err();

        let e = refused(vex_doc(
            tree(),
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["A", "C"]}}]),
        ));
        assert_eq!(e.pointer, "/vulnerabilities/0/product_status/fixed/1");
        assert!(e.message.contains("never defined"), "{}", e.message);

        let e = refused(vex_doc(
            tree(),
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"known_not_affected": ["A"]}}]),
        ));
        assert_eq!(
            e.pointer,
            "/vulnerabilities/0/product_status/known_not_affected/0"
        );
        assert!(e.message.contains("6.1.27.9"), "{}", e.message);

        let e = refused(vex_doc(
            tree(),
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"maybe": ["A"]}}]),
        ));
        assert_eq!(e.pointer, "/vulnerabilities/0/product_status/maybe");

        let e = refused(vex_doc(
            tree(),
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["A"]},
            "threats": [{"category": "impact", "details": "x", "group_ids": ["G"]}]}]),
        ));
        assert_eq!(e.pointer, "/vulnerabilities/0/threats/0/group_ids/0");

        let mut duplicate = tree();
        duplicate["full_product_names"][1]["product_id"] = json!("A");
        let e = refused(vex_doc(
            duplicate,
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["A"]}}]),
        ));
        assert_eq!(e.pointer, "/product_tree/full_product_names/1/product_id");

        let mut cyclic = tree();
        cyclic["relationships"] = json!([
            {"category": "default_component_of", "full_product_name": {"name": "x", "product_id": "X"},
             "product_reference": "Y", "relates_to_product_reference": "B"},
            {"category": "installed_on", "full_product_name": {"name": "y", "product_id": "Y"},
             "product_reference": "X", "relates_to_product_reference": "B"}]);
        let e = refused(vex_doc(
            cyclic,
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["X"]}}]),
        ));
        assert!(
            e.pointer.starts_with("/product_tree/relationships/"),
            "{}",
            e.pointer
        );
        assert!(e.pointer.ends_with("/product_reference"), "{}", e.pointer);
        assert!(e.message.contains("cyclic"), "{}", e.message);

        let mut bad_purl = tree();
        bad_purl["full_product_names"][0]["product_identification_helper"]["purl"] = json!("npm/a");
        let e = refused(vex_doc(
            bad_purl,
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["A"]}}]),
        ));
        assert_eq!(
            e.pointer,
            "/product_tree/full_product_names/0/product_identification_helper/purl"
        );

        let mut doc: Value = serde_json::from_slice(&vex_doc(
            tree(),
            json!([{"cve": "CVE-2024-0001",
            "product_status": {"fixed": ["A"]}}]),
        ))
        .unwrap();
        doc["document"]["tracking"]["current_release_date"] = json!("yesterday");
        let e = refused(doc.to_string().into_bytes());
        assert_eq!(e.pointer, "/document/tracking/current_release_date");
        doc["document"]["tracking"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        assert_eq!(
            refused(doc.to_string().into_bytes()).pointer,
            "/document/tracking/id"
        );
        doc["document"]["csaf_version"] = json!("2.1");
        assert_eq!(
            refused(doc.to_string().into_bytes()).pointer,
            "/document/csaf_version"
        );
    }
}
