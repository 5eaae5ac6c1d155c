//! Reading an Open XML SPIF (schema `http://www.xmlspif.org/spif`, with or without the namespace) into a model
//! that keeps what access control and validity depend on, and where each element was.
//!
//! Presentation is not part of a SecurityPolicy and is skipped by design, never silently: `markingData`,
//! `markingQualifier` (and their `code` and `qualifier` children), colours, the SPIF's own `extensions` (file
//! metadata such as its binding) and `defaultSecurityPolicyId`; [`Spif::ignored`] lists what a file had. Any
//! other element or attribute is refused, naming it.

use std::collections::BTreeSet;

use roxmltree::{Document, Node};

use crate::api::{Applied, CategoryType, RequiredOperation};

/// The SPIF namespace.
pub const SPIF_NS: &str = "http://www.xmlspif.org/spif";

/// An element's place in the file, for errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// `securityCategoryTagSet "Ethics" > securityCategoryTag "Bandwagons" > tagCategory "Animal Rights"`.
    pub path: String,
    /// Line in the file (1-based).
    pub line: u32,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.path)
    }
}

/// A problem with a SPIF, naming the element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpifError {
    /// Where.
    pub at: Loc,
    /// What.
    pub message: String,
}

/// A label and attribute value (`lacv`): numbers compare as numbers (`004` is `4`), other text as text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lacv {
    /// Decimal digits.
    Number(u128),
    /// Anything else.
    Text(String),
}

impl Lacv {
    fn parse(s: &str) -> Lacv {
        let t = s.trim();
        match t.parse::<u128>() {
            Ok(n) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => Lacv::Number(n),
            _ => Lacv::Text(t.to_string()),
        }
    }
}

impl std::fmt::Display for Lacv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lacv::Number(n) => write!(f, "{n}"),
            Lacv::Text(t) => f.write_str(t),
        }
    }
}

/// A category reference inside the SPIF: a tag set (by name, or by id for another policy's), the tag type that
/// picks the tag in it, and one value (`lacv`) or all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    /// Tag set name (`tagSetRef`) or id (`tagSetId`).
    pub tag_set: String,
    /// Tag type.
    pub kind: CategoryType,
    /// One value, or every value when `None`.
    pub lacv: Option<Lacv>,
    /// Where.
    pub at: Loc,
}

/// A `requiredCategory`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Req {
    /// Operation.
    pub op: RequiredOperation,
    /// Its `categoryGroup`s.
    pub refs: Vec<Ref>,
    /// Where.
    pub at: Loc,
}

/// An `equivalentClassification`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EquivClass {
    /// The other policy's local name (`policyRef`).
    pub policy_ref: String,
    /// Its classification.
    pub lacv: Lacv,
    /// Direction.
    pub applied: Applied,
    /// Categories of the other policy the translated label gains.
    pub required: Vec<Req>,
    /// Where.
    pub at: Loc,
}

/// An `equivalentSecCategoryTag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EquivCat {
    /// The other policy's local name (`policyRef`).
    pub policy_ref: String,
    /// The other policy's value; `None` with `discard`.
    pub target: Option<Ref>,
    /// Direction.
    pub applied: Applied,
    /// `action="discard"`: the value is dropped on translation.
    pub discard: bool,
    /// Where.
    pub at: Loc,
}

/// A `securityClassification`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// Name.
    pub name: String,
    /// LACV.
    pub lacv: Lacv,
    /// Hierarchy (low to high).
    pub hierarchy: u64,
    /// `obsolete="true"`.
    pub obsolete: bool,
    /// Its `requiredCategory`s.
    pub required: Vec<Req>,
    /// Its `equivalentClassification`s.
    pub equivs: Vec<EquivClass>,
    /// Where.
    pub at: Loc,
}

/// A `tagCategory` (one value of a tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Name.
    pub name: String,
    /// LACV.
    pub lacv: Lacv,
    /// `obsolete="true"`.
    pub obsolete: bool,
    /// `excludedClass` names, in order.
    pub excluded_classes: Vec<(String, Loc)>,
    /// `excludedCategory`s.
    pub excluded: Vec<Ref>,
    /// `requiredCategory`s.
    pub required: Vec<Req>,
    /// `equivalentSecCategoryTag`s.
    pub equivs: Vec<EquivCat>,
    /// Where.
    pub at: Loc,
}

/// A `securityCategoryTag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: CategoryType,
    /// `singleSelection="true"`.
    pub single: bool,
    /// Values.
    pub values: Vec<Value>,
    /// Where.
    pub at: Loc,
}

/// A `securityCategoryTagSet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSet {
    /// Name.
    pub name: String,
    /// Object identifier.
    pub id: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Where.
    pub at: Loc,
}

/// An `equivalentPolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EquivPolicy {
    /// The local name other elements use in `policyRef`.
    pub name: String,
    /// Object identifier.
    pub id: String,
    /// Categories every label translated into it gains.
    pub required: Vec<Req>,
    /// Where.
    pub at: Loc,
}

/// One SPIF, as far as a SecurityPolicy goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spif {
    /// Policy name (`securityPolicyId name`).
    pub name: String,
    /// Policy object identifier (`securityPolicyId id`).
    pub id: String,
    /// Classifications, in document order.
    pub classifications: Vec<Class>,
    /// Tag sets, in document order.
    pub tag_sets: Vec<TagSet>,
    /// Equivalent policies.
    pub equivalent_policies: Vec<EquivPolicy>,
    /// Presentation elements skipped by design.
    pub ignored: BTreeSet<String>,
}

const PRESENTATION: &[&str] = &["markingData", "markingQualifier"];

struct Reader<'a> {
    doc: &'a Document<'a>,
    ignored: BTreeSet<String>,
}

type R<T> = Result<T, SpifError>;

impl<'a> Reader<'a> {
    fn loc(&self, n: Node, path: &str) -> Loc {
        Loc { path: path.to_string(), line: self.doc.text_pos_at(n.range().start).row }
    }

    fn err<T>(&self, n: Node, path: &str, message: impl Into<String>) -> R<T> {
        Err(SpifError { at: self.loc(n, path), message: message.into() })
    }

    /// The element's children, after checking each is allowed (presentation children are recorded and skipped).
    fn children<'n>(&mut self, n: Node<'n, 'n>, path: &str, allowed: &[&str]) -> R<Vec<Node<'n, 'n>>> {
        let mut out = Vec::new();
        for c in n.children() {
            if c.is_text() && c.text().is_some_and(|t| !t.trim().is_empty()) && !allowed.contains(&"#text") {
                return self.err(n, path, "holds text where the SPIF schema has elements only");
            }
            if !c.is_element() {
                continue;
            }
            let ns = c.tag_name().namespace();
            let name = c.tag_name().name();
            if ns.is_some_and(|ns| ns != SPIF_NS) {
                return self.err(c, &format!("{path} > {name}"), format!("element of namespace {ns:?} is not SPIF"));
            }
            if PRESENTATION.contains(&name) {
                self.ignored.insert(name.to_string());
                continue;
            }
            if !allowed.contains(&name) {
                return self.err(
                    c,
                    &format!("{path} > {name}"),
                    "Marshal cannot represent this element; refusing rather than dropping it",
                );
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Checks the element's attributes against `allowed` (namespaced ones, such as `xsi:schemaLocation`, and
    /// `presentation` ones are skipped).
    fn attributes(&mut self, n: Node, path: &str, allowed: &[&str], presentation: &[&str]) -> R<()> {
        for a in n.attributes() {
            if a.namespace().is_some() {
                continue;
            }
            if presentation.contains(&a.name()) {
                self.ignored.insert(format!("@{}", a.name()));
                continue;
            }
            if !allowed.contains(&a.name()) {
                return self.err(
                    n,
                    path,
                    format!(
                        "attribute {}={:?}: Marshal cannot represent it; refusing rather than dropping it",
                        a.name(),
                        a.value()
                    ),
                );
            }
        }
        Ok(())
    }

    fn required_attr<'n>(&self, n: Node<'n, 'n>, path: &str, name: &str) -> R<&'n str> {
        match n.attribute(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => self.err(n, path, format!("attribute {name} is required")),
        }
    }

    fn flag(&self, n: Node, path: &str, name: &str) -> R<bool> {
        match n.attribute(name) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(v) => self.err(n, path, format!("attribute {name}={v:?} is not a boolean")),
        }
    }

    fn kind(&self, n: Node, path: &str) -> R<CategoryType> {
        let t = self.required_attr(n, path, "tagType")?;
        match t {
            "permissive" => Ok(CategoryType::Permissive),
            "restrictive" => Ok(CategoryType::Restrictive),
            "tagType7" | "informative" => Ok(CategoryType::Informative),
            "enumerated" => match n.attribute("enumType") {
                Some("permissive") => Ok(CategoryType::EnumeratedPermissive),
                Some("restrictive") => Ok(CategoryType::EnumeratedRestrictive),
                Some(other) => self.err(n, path, format!("enumType {other:?} is neither permissive nor restrictive")),
                None => self.err(n, path, "tagType enumerated needs enumType (permissive or restrictive)"),
            },
            other => self.err(n, path, format!("tagType {other:?} is not a SPIF tag type")),
        }
    }

    fn applied(&self, n: Node, path: &str) -> R<Applied> {
        match self.required_attr(n, path, "applied")? {
            "encrypt" => Ok(Applied::Encrypt),
            "decrypt" => Ok(Applied::Decrypt),
            "both" => Ok(Applied::Both),
            other => self.err(n, path, format!("applied {other:?} is not encrypt, decrypt or both")),
        }
    }

    /// `excludedCategory` and `categoryGroup`: `tagSetRef`, `tagType` (`enumType`), and `lacv` or `all`.
    fn category_ref(&mut self, n: Node, path: &str) -> R<Ref> {
        self.attributes(n, path, &["tagSetRef", "tagType", "enumType", "lacv", "all"], &[])?;
        self.children(n, path, &[])?;
        let tag_set = self.required_attr(n, path, "tagSetRef")?.to_string();
        let kind = self.kind(n, path)?;
        let all = self.flag(n, path, "all")?;
        let lacv = n.attribute("lacv").filter(|v| !v.trim().is_empty()).map(Lacv::parse);
        if all && lacv.is_some() {
            return self.err(n, path, "names both one value (lacv) and all of them (all=\"true\")");
        }
        Ok(Ref { tag_set, kind, lacv, at: self.loc(n, path) })
    }

    fn required(&mut self, n: Node, path: &str) -> R<Req> {
        self.attributes(n, path, &["operation"], &[])?;
        let op = match self.required_attr(n, path, "operation")? {
            "oneOrMore" => RequiredOperation::OneOrMore,
            "onlyOne" => RequiredOperation::OnlyOne,
            "all" => RequiredOperation::All,
            other => return self.err(n, path, format!("operation {other:?} is not oneOrMore, onlyOne or all")),
        };
        let mut refs = Vec::new();
        for g in self.children(n, path, &["categoryGroup"])? {
            refs.push(self.category_ref(g, &format!("{path} > categoryGroup"))?);
        }
        if refs.is_empty() {
            return self.err(n, path, "requires nothing: it has no categoryGroup");
        }
        Ok(Req { op, refs, at: self.loc(n, path) })
    }

    fn classification(&mut self, n: Node) -> R<Class> {
        let name = n.attribute("name").unwrap_or_default().to_string();
        let path = format!("securityClassification {name:?}");
        self.attributes(n, &path, &["name", "lacv", "hierarchy", "obsolete"], &["color"])?;
        self.required_attr(n, &path, "name")?;
        let lacv = Lacv::parse(self.required_attr(n, &path, "lacv")?);
        let hierarchy = self.required_attr(n, &path, "hierarchy")?;
        let Ok(hierarchy) = hierarchy.trim().parse::<u64>() else {
            return self.err(n, &path, format!("hierarchy {hierarchy:?} is not a whole number"));
        };
        let obsolete = self.flag(n, &path, "obsolete")?;
        let (mut required, mut equivs) = (Vec::new(), Vec::new());
        for c in self.children(n, &path, &["requiredCategory", "equivalentClassification"])? {
            match c.tag_name().name() {
                "requiredCategory" => required.push(self.required(c, &format!("{path} > requiredCategory"))?),
                _ => {
                    let p = format!("{path} > equivalentClassification");
                    self.attributes(c, &p, &["policyRef", "lacv", "applied"], &[])?;
                    let policy_ref = self.required_attr(c, &p, "policyRef")?.to_string();
                    let lacv = Lacv::parse(self.required_attr(c, &p, "lacv")?);
                    let applied = self.applied(c, &p)?;
                    let mut req = Vec::new();
                    for r in self.children(c, &p, &["requiredCategory"])? {
                        req.push(self.required(r, &format!("{p} > requiredCategory"))?);
                    }
                    equivs.push(EquivClass { policy_ref, lacv, applied, required: req, at: self.loc(c, &p) });
                }
            }
        }
        Ok(Class { name, lacv, hierarchy, obsolete, required, equivs, at: self.loc(n, &path) })
    }

    fn value(&mut self, n: Node, tag_path: &str) -> R<Value> {
        let name = n.attribute("name").unwrap_or_default().to_string();
        let path = format!("{tag_path} > tagCategory {name:?}");
        self.attributes(n, &path, &["name", "lacv", "obsolete"], &[])?;
        self.required_attr(n, &path, "name")?;
        let lacv = Lacv::parse(self.required_attr(n, &path, "lacv")?);
        let obsolete = self.flag(n, &path, "obsolete")?;
        let mut v = Value {
            name,
            lacv,
            obsolete,
            excluded_classes: Vec::new(),
            excluded: Vec::new(),
            required: Vec::new(),
            equivs: Vec::new(),
            at: self.loc(n, &path),
        };
        let allowed = ["excludedClass", "excludedCategory", "requiredCategory", "equivalentSecCategoryTag"];
        for c in self.children(n, &path, &allowed)? {
            let kind = c.tag_name().name();
            let p = format!("{path} > {kind}");
            match kind {
                "excludedClass" => {
                    self.attributes(c, &p, &[], &[])?;
                    self.children(c, &p, &["#text"])?;
                    let class = c.text().unwrap_or_default().trim().to_string();
                    if class.is_empty() {
                        return self.err(c, &p, "names no classification");
                    }
                    v.excluded_classes.push((class, self.loc(c, &p)));
                }
                "excludedCategory" => v.excluded.push(self.category_ref(c, &p)?),
                "requiredCategory" => v.required.push(self.required(c, &p)?),
                _ => {
                    let allowed = ["policyRef", "tagSetId", "tagType", "enumType", "lacv", "applied", "action"];
                    self.attributes(c, &p, &allowed, &[])?;
                    self.children(c, &p, &[])?;
                    let policy_ref = self.required_attr(c, &p, "policyRef")?.to_string();
                    let applied = self.applied(c, &p)?;
                    let discard = match c.attribute("action") {
                        None => false,
                        Some("discard") => true,
                        Some(other) => return self.err(c, &p, format!("action {other:?} is not discard")),
                    };
                    let target = if discard {
                        None
                    } else {
                        let tag_set = self.required_attr(c, &p, "tagSetId")?.to_string();
                        let kind = self.kind(c, &p)?;
                        let lacv = Lacv::parse(self.required_attr(c, &p, "lacv")?);
                        Some(Ref { tag_set, kind, lacv: Some(lacv), at: self.loc(c, &p) })
                    };
                    v.equivs.push(EquivCat { policy_ref, target, applied, discard, at: self.loc(c, &p) });
                }
            }
        }
        Ok(v)
    }

    fn tag_set(&mut self, n: Node) -> R<TagSet> {
        let name = n.attribute("name").unwrap_or_default().to_string();
        let path = format!("securityCategoryTagSet {name:?}");
        self.attributes(n, &path, &["name", "id"], &[])?;
        self.required_attr(n, &path, "name")?;
        let id = self.required_attr(n, &path, "id")?.to_string();
        let mut tags = Vec::new();
        for t in self.children(n, &path, &["securityCategoryTag"])? {
            let tname = t.attribute("name").unwrap_or_default().to_string();
            let tpath = format!("{path} > securityCategoryTag {tname:?}");
            self.attributes(t, &tpath, &["name", "tagType", "enumType", "tag7Encoding", "singleSelection"], &[])?;
            self.required_attr(t, &tpath, "name")?;
            let kind = self.kind(t, &tpath)?;
            let single = self.flag(t, &tpath, "singleSelection")?;
            let mut values = Vec::new();
            for c in self.children(t, &tpath, &["tagCategory"])? {
                values.push(self.value(c, &tpath)?);
            }
            tags.push(Tag { name: tname, kind, single, values, at: self.loc(t, &tpath) });
        }
        Ok(TagSet { name, id, tags, at: self.loc(n, &path) })
    }
}

/// Parses one SPIF document.
pub fn parse(text: &str) -> R<Spif> {
    let doc = Document::parse(text).map_err(|e| {
        let pos = e.pos();
        SpifError { at: Loc { path: "(document)".into(), line: pos.row }, message: format!("not well-formed XML: {e}") }
    })?;
    let mut r = Reader { doc: &doc, ignored: BTreeSet::new() };
    let root = doc.root_element();
    if root.tag_name().name() != "SPIF" || root.tag_name().namespace().is_some_and(|ns| ns != SPIF_NS) {
        return r.err(root, root.tag_name().name(), format!("the root element must be SPIF (namespace {SPIF_NS})"));
    }
    let root_attrs =
        ["schemaVersion", "version", "creationDate", "originatorDN", "keyIdentifier", "privilegeId", "rbacId"];
    r.attributes(root, "SPIF", &root_attrs, &[])?;
    let allowed = [
        "defaultSecurityPolicyId",
        "securityPolicyId",
        "equivalentPolicies",
        "securityClassifications",
        "securityCategoryTagSets",
        "extensions",
    ];
    let mut spif = Spif {
        name: String::new(),
        id: String::new(),
        classifications: Vec::new(),
        tag_sets: Vec::new(),
        equivalent_policies: Vec::new(),
        ignored: BTreeSet::new(),
    };
    let mut seen_id = false;
    for c in r.children(root, "SPIF", &allowed)? {
        let name = c.tag_name().name();
        match name {
            "defaultSecurityPolicyId" | "extensions" => {
                r.ignored.insert(name.to_string());
            }
            "securityPolicyId" => {
                r.attributes(c, name, &["name", "id"], &[])?;
                spif.name = r.required_attr(c, name, "name")?.to_string();
                spif.id = r.required_attr(c, name, "id")?.to_string();
                seen_id = true;
            }
            "equivalentPolicies" => {
                for e in r.children(c, name, &["equivalentPolicy"])? {
                    let alias = e.attribute("name").unwrap_or_default().to_string();
                    let path = format!("equivalentPolicies > equivalentPolicy {alias:?}");
                    r.attributes(e, &path, &["name", "id"], &[])?;
                    r.required_attr(e, &path, "name")?;
                    let id = r.required_attr(e, &path, "id")?.to_string();
                    let mut required = Vec::new();
                    for q in r.children(e, &path, &["requiredCategory"])? {
                        required.push(r.required(q, &format!("{path} > requiredCategory"))?);
                    }
                    let at = r.loc(e, &path);
                    spif.equivalent_policies.push(EquivPolicy { name: alias, id, required, at });
                }
            }
            "securityClassifications" => {
                for k in r.children(c, name, &["securityClassification"])? {
                    spif.classifications.push(r.classification(k)?);
                }
            }
            _ => {
                for t in r.children(c, name, &["securityCategoryTagSet"])? {
                    spif.tag_sets.push(r.tag_set(t)?);
                }
            }
        }
    }
    if !seen_id {
        return r.err(root, "SPIF", "securityPolicyId is required (the policy's name and object identifier)");
    }
    if spif.classifications.is_empty() {
        return r.err(root, "SPIF", "securityClassifications lists no classification");
    }
    spif.ignored = r.ignored;
    Ok(spif)
}
