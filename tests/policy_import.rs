//! Issue 13 §5: `marshal policy import` reads Open XML SPIFs, and the cases the spiffing project publishes
//! (test-data/tests.xml) hold as fixtures of Marshal's own (tests/fixtures/spif/): the food policy's two clearances,
//! its invalid labels, an unknown policy id, a SPIF with a duplicate excluded classification, and a label
//! translated through an equivalent policy and then permitted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::t;
use marshal::api::{
    Applied, CategoryRef, CategoryType, ConfidentialityLabel, MemberCluster, MissionWorkload, RequiredCategory,
    RequiredOperation, SecurityPolicy,
};
use marshal::placement::{ClusterFacts, Decision, History, Settings, Snapshot, WorkloadModel, decide, translate};
use serde::Deserialize;
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spif").join(name)
}

fn import(names: &[&str]) -> Vec<SecurityPolicy> {
    let files: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    marshal::policy::import_files(&files).unwrap_or_else(|e| panic!("import {names:?}: {e}"))
}

fn import_err(texts: &[(&str, &str)]) -> String {
    let texts: Vec<(PathBuf, String)> = texts.iter().map(|(n, t)| (PathBuf::from(n), t.to_string())).collect();
    match marshal::policy::import_texts(&texts) {
        Ok(p) => panic!("imported what should be refused: {p:#?}"),
        Err(e) => e.to_string(),
    }
}

fn cref(tag: &str, values: &[&str]) -> CategoryRef {
    CategoryRef { tag_name: tag.into(), values: values.iter().map(|v| v.to_string()).collect() }
}

fn yaml_objects(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).expect("yaml")).expect("json"))
        .filter(|v| !v.is_null())
        .collect()
}

struct Food {
    snap: Snapshot,
    workloads: Vec<MissionWorkload>,
}

fn food() -> Food {
    let policies = import(&["food.xml"]);
    let mut clusters = Vec::new();
    let mut workloads = Vec::new();
    for o in yaml_objects(&fixture("food.yaml")) {
        match o["kind"].as_str() {
            Some("MemberCluster") => {
                let mc: MemberCluster = serde_json::from_value(o).expect("MemberCluster");
                clusters.push(ClusterFacts::from_crd(&mc, Some(t(0))));
            }
            Some("MissionWorkload") => workloads.push(serde_json::from_value(o).expect("MissionWorkload")),
            other => panic!("unexpected {other:?}"),
        }
    }
    for c in &mut clusters {
        c.free.insert("core".into(), common::free(8000, 32 << 30, 110));
        c.capacity_observed_at = Some(t(0));
    }
    Food { snap: Snapshot::new(&policies, clusters, &[], Settings::default()), workloads }
}

impl Food {
    fn decide(&self, name: &str) -> Decision {
        let w = self.workloads.iter().find(|w| w.metadata.name.as_deref() == Some(name)).expect("workload");
        decide(&WorkloadModel::from_crd(w), &self.snap, &History::default(), t(0))
    }
}

fn reason(d: &Decision, cluster: &str) -> (String, String) {
    let v = d.verdicts.iter().find(|v| v.cluster == cluster).expect("verdict");
    (v.reason.as_str().to_string(), v.message.clone())
}

#[test]
fn the_food_policy_imports_with_its_types_values_and_rules() {
    let p = &import(&["food.xml"])[0];
    assert_eq!(p.metadata.name.as_deref(), Some("food"));
    let s = &p.spec;
    assert_eq!(s.policy_identifier, "Food");
    assert_eq!(s.policy_id.as_deref(), Some("1.2.826.0.1.6726289.0.0"));
    assert_eq!(s.classifications, ["Freely Available", "Commodity", "Luxury", "Ambrosia"], "hierarchy order");
    let types: Vec<(&str, CategoryType)> = s.categories.iter().map(|c| (c.tag_name.as_str(), c.type_)).collect();
    assert_eq!(
        types,
        [
            ("Texture", CategoryType::Permissive),
            ("Flavour", CategoryType::Permissive),
            ("Colour", CategoryType::Informative),
            ("Allergens", CategoryType::Restrictive),
            ("Ethical Concerns", CategoryType::EnumeratedRestrictive),
            ("Bandwagons", CategoryType::Permissive),
            ("Packaging Materials", CategoryType::Informative),
        ]
    );
    let flavour = s.category("Flavour").expect("Flavour");
    assert_eq!(flavour.values, ["Sweet", "Salty", "Meaty", "Chocolate"], "declared values");
    let chocolate = &flavour.value_rules["Chocolate"];
    assert_eq!(chocolate.excluded_classes, ["Commodity", "Ambrosia"]);
    assert_eq!(chocolate.excluded_categories, [cref("Flavour", &["Meaty"])]);
    let meaty = &flavour.value_rules["Meaty"];
    assert_eq!(meaty.excluded_categories, [cref("Bandwagons", &[])], "all values of the Ethics permissive tag");
    assert_eq!(
        meaty.required_categories,
        [RequiredCategory {
            operation: RequiredOperation::All,
            categories: vec![cref("Ethical Concerns", &["Not Vegan"])]
        }]
    );
    assert_eq!(
        s.classification_rules["Luxury"].required_categories,
        [RequiredCategory {
            operation: RequiredOperation::OneOrMore,
            categories: vec![cref("Flavour", &["Sweet"]), cref("Flavour", &["Meaty"]), cref("Flavour", &["Chocolate"])],
        }]
    );
    assert!(s.equivalent_policies.is_empty());
}

#[test]
fn the_food_policys_two_clearances_deny_and_permit_the_same_label() {
    let f = food();
    let d = f.decide("milk-chocolate");
    let (r, m) = reason(&d, "lactose-intolerant");
    assert_eq!(r, "NotReleasable", "{m}");
    assert!(m.contains("Allergens") && m.contains("lacks Lactose"), "names the category and the value: {m}");
    assert_eq!(reason(&d, "all-okay").0, "Eligible", "informative Colour is ignored; every other tag is held");
    assert_eq!(d.placements.len(), 1);
    assert_eq!(d.placements[0].cluster, "all-okay");
}

#[test]
fn the_food_policys_invalid_labels_never_reach_the_acdf() {
    let f = food();
    for (label, rule) in [
        (
            "cheap-milk-chocolate",
            "Flavour value Chocolate may not be used with classification Commodity (excludedClass",
        ),
        ("meaty-milk-chocolate", "(excludedCategory"),
    ] {
        let d = f.decide(label);
        for cluster in ["lactose-intolerant", "all-okay"] {
            let (r, m) = reason(&d, cluster);
            assert_eq!(r, "LabelInvalid", "{label} on {cluster}: {m}");
            assert!(m.contains(rule), "{label}: the rule is named: {m}");
        }
        assert!(d.placements.is_empty());
    }
    for label in ["bacon", "water"] {
        let d = f.decide(label);
        for cluster in ["lactose-intolerant", "all-okay"] {
            let (r, m) = reason(&d, cluster);
            assert_ne!(r, "LabelInvalid", "{label} is valid: {m}");
        }
    }
    // Bacon is valid, and neither clearance holds Meaty; water is Freely Available, which neither holds.
    assert_eq!(reason(&f.decide("bacon"), "all-okay").0, "NotReleasable");
    assert_eq!(reason(&f.decide("water"), "all-okay").0, "ClassificationNotCleared");
}

#[test]
fn a_label_under_an_unknown_policy_id_is_never_placed() {
    let f = food();
    let mut w = f.workloads[0].clone();
    w.spec.confidentiality.policy = "Beverage".into();
    let d = decide(&WorkloadModel::from_crd(&w), &f.snap, &History::default(), t(0));
    for v in &d.verdicts {
        assert_eq!(v.reason.as_str(), "PolicyUnknown", "{}", v.message);
        assert!(v.message.contains("Beverage"), "{}", v.message);
    }
    assert!(d.placements.is_empty());
}

#[test]
fn a_spif_with_a_duplicate_excluded_classification_is_refused() {
    let err = import_err(&[(
        "food-duplicate-excluded-class.xml",
        &std::fs::read_to_string(fixture("food-duplicate-excluded-class.xml")).expect("read"),
    )]);
    assert!(err.contains("duplicate excluded classification \"Commodity\""), "{err}");
    assert!(
        err.contains("tagCategory \"Chocolate\" > excludedClass") && err.contains("line "),
        "names the element: {err}"
    );
}

fn uk_clearance() -> ClusterFacts {
    let mut c = common::cluster("uk-1", "GBR", &["core"]);
    c.clearance.policy = "UK".into();
    c.clearance.classifications = ["OFFICIAL", "SECRET", "TOP SECRET"].iter().map(|s| s.to_string()).collect();
    c.clearance.categories = [
        ("Sensitive".to_string(), ["SENSITIVE".to_string()].into()),
        ("Mandatory Sensitive Descriptors".to_string(), ["LOCSEN".to_string()].into()),
        ("Eyes Only".to_string(), ["UK", "NATO", "EU"].iter().map(|s| s.to_string()).collect()),
    ]
    .into();
    c
}

fn tlpx_label(classification: &str, categories: serde_json::Value) -> serde_json::Value {
    json!({"owner": "GBR", "confidentiality": {"policy": "TLPX", "classification": classification, "categories": categories}})
}

#[test]
fn a_label_translated_through_an_equivalent_policy_is_then_permitted() {
    let policies = import(&["tlpx.xml", "tlp.xml", "uk-demo.xml"]);
    let spec = |id: &str| policies.iter().find(|p| p.spec.policy_identifier == id).map(|p| p.spec.clone()).expect(id);
    let label: ConfidentialityLabel = serde_json::from_value(json!({"policy": "TLPX", "classification": "AMBER",
        "categories": [{"tagName": "Jurisdiction", "values": ["EU"]}]}))
    .expect("label");
    // spiffing: "TLPX:AMBER J:EU" encrypts to "DEMO-UK SECRET - UK / EU EYES ONLY"...
    let uk = translate::translate(&label, Some(&spec("TLPX")), "UK", Some(&spec("UK"))).expect("route").expect("ok");
    assert_eq!(uk.classification, "SECRET");
    assert_eq!(
        serde_json::to_value(&uk.categories).expect("json"),
        json!([{"tagName": "Eyes Only", "values": ["EU", "UK"]}])
    );
    // ...and to "TLP:AMBER [REGION=EU] [Additional Handling May Apply]/[Imported Data]".
    let tlp = translate::translate(&label, Some(&spec("TLPX")), "TLP", Some(&spec("TLP"))).expect("route").expect("ok");
    assert_eq!(tlp.classification, "AMBER");
    assert_eq!(
        serde_json::to_value(&tlp.categories).expect("json"),
        json!([{"tagName": "Extra Warning", "values": ["Extra", "Foreign"]}, {"tagName": "Regions", "values": ["EU"]}])
    );
    // "TLPX:GREEN J:SafeHarbour Do not action" encrypts to "TLP:GREEN [REGION=EU/US] [Imported Data]".
    let green: ConfidentialityLabel = serde_json::from_value(json!({"policy": "TLPX", "classification": "GREEN",
        "categories": [{"tagName": "Jurisdiction", "values": ["SafeHarbour"]}, {"tagName": "Actions", "values": ["Do not action"]}]}))
    .expect("label");
    let tlp = translate::translate(&green, Some(&spec("TLPX")), "TLP", Some(&spec("TLP"))).expect("route").expect("ok");
    assert_eq!(
        serde_json::to_value(&tlp.categories).expect("json"),
        json!([{"tagName": "Extra Warning", "values": ["Foreign"]}, {"tagName": "Regions", "values": ["EU", "US"]}]),
        "Do not action is discarded"
    );

    // The engine translates on its own: a TLPX workload is judged against a UK clearance, and permitted.
    let snap = Snapshot::new(&policies, vec![uk_clearance()], &[], Settings::default());
    let w = common::workload(tlpx_label("AMBER", json!([{"tagName": "Jurisdiction", "values": ["EU"]}])));
    let d = decide(&w, &snap, &History::default(), t(0));
    assert_eq!(reason(&d, "uk-1").0, "Eligible", "{}", reason(&d, "uk-1").1);
    // A clearance without the EU or UK caveat is denied the translated label.
    let mut narrow = uk_clearance();
    narrow.clearance.categories.insert("Eyes Only".into(), ["US".to_string()].into());
    let snap = Snapshot::new(&policies, vec![narrow], &[], Settings::default());
    let (r, m) = reason(&decide(&w, &snap, &History::default(), t(0)), "uk-1");
    assert_eq!(r, "NotReleasable", "{m}");
    assert!(m.contains("Eyes Only") && m.contains("[EU, UK]"), "{m}");
}

#[test]
fn a_translation_is_valid_under_the_target_policy_or_is_not_used() {
    // GREEN maps to UK OFFICIAL plus SENSITIVE, and EU to Eyes Only EU and UK, which exclude OFFICIAL.
    let policies = import(&["tlpx.xml", "tlp.xml", "uk-demo.xml"]);
    let snap = Snapshot::new(&policies, vec![uk_clearance()], &[], Settings::default());
    let w = common::workload(tlpx_label("GREEN", json!([{"tagName": "Jurisdiction", "values": ["EU"]}])));
    let (r, m) = reason(&decide(&w, &snap, &History::default(), t(0)), "uk-1");
    assert_eq!(r, "LabelInvalid", "{m}");
    assert!(m.contains("translation into UK") && m.contains("excludedClass"), "{m}");
}

#[test]
fn no_mapping_means_no_translation_and_mappings_follow_their_direction() {
    let policies = import(&["tlpx.xml", "tlp.xml", "uk-demo.xml", "alpha.xml", "beta.xml"]);
    let snap = |c: ClusterFacts| Snapshot::new(&policies, vec![c], &[], Settings::default());
    // TLP states no mapping into UK, and UK none from TLP.
    let w = common::workload(json!({"owner": "GBR", "confidentiality": {"policy": "TLP", "classification": "AMBER",
        "categories": [{"tagName": "Regions", "values": ["EU"]}]}}));
    let (r, m) = reason(&decide(&w, &snap(uk_clearance()), &History::default(), t(0)), "uk-1");
    assert_eq!(r, "PolicyMismatch", "{m}");
    // BETA maps ALPHA's labels in (decrypt): an ALPHA label reaches a BETA clearance...
    let mut beta = common::cluster("beta-1", "BEA", &["core"]);
    beta.clearance.policy = "BETA".into();
    beta.clearance.classifications = ["B-CLOSED".to_string()].into();
    beta.clearance.categories = [("Releasable".to_string(), ["ANA".to_string()].into())].into();
    let w = common::workload(json!({"owner": "BEA", "confidentiality": {"policy": "ALPHA", "classification": "A-HIGH",
        "categories": [{"tagName": "Audience", "values": ["ANA"]}]}}));
    let (r, m) = reason(&decide(&w, &snap(beta.clone()), &History::default(), t(0)), "beta-1");
    assert_eq!(r, "Eligible", "{m}");
    // ...but a BETA label does not reach an ALPHA clearance through it (the mapping says decrypt, not encrypt).
    let mut alpha = common::cluster("alpha-1", "ANA", &["core"]);
    alpha.clearance.policy = "ALPHA".into();
    alpha.clearance.classifications = ["A-HIGH".to_string()].into();
    alpha.clearance.categories = [("Audience".to_string(), ["ANA".to_string()].into())].into();
    let w =
        common::workload(json!({"owner": "ANA", "confidentiality": {"policy": "BETA", "classification": "B-CLOSED",
        "categories": [{"tagName": "Releasable", "values": ["ANA"]}]}}));
    let (r, m) = reason(&decide(&w, &snap(alpha), &History::default(), t(0)), "alpha-1");
    assert_eq!(r, "PolicyMismatch", "{m}");
    // The same mapping stated as encrypt does not bring ALPHA's labels in either.
    let beta_xml = std::fs::read_to_string(fixture("beta.xml"))
        .expect("read")
        .replace("applied=\"decrypt\"", "applied=\"encrypt\"");
    let texts = vec![
        (fixture("alpha.xml"), std::fs::read_to_string(fixture("alpha.xml")).expect("read")),
        (PathBuf::from("beta-encrypt.xml"), beta_xml),
    ];
    let encrypt = marshal::policy::import_texts(&texts).expect("import");
    let e = &encrypt[1].spec.equivalent_policies[0];
    assert!(e.classifications.iter().all(|m| m.applied == Applied::Encrypt));
    let w = common::workload(json!({"owner": "BEA", "confidentiality": {"policy": "ALPHA", "classification": "A-HIGH",
        "categories": [{"tagName": "Audience", "values": ["ANA"]}]}}));
    let snap = Snapshot::new(&encrypt, vec![beta], &[], Settings::default());
    let (r, m) = reason(&decide(&w, &snap, &History::default(), t(0)), "beta-1");
    assert_eq!(r, "PolicyMismatch", "{m}");
}

#[test]
fn explicit_alternatives_override_the_mappings() {
    let policies = import(&["tlpx.xml", "tlp.xml", "uk-demo.xml"]);
    let snap = Snapshot::new(&policies, vec![uk_clearance()], &[], Settings::default());
    // The mapping would give Eyes Only EU and UK (held); the planner's own alternative says US only (not held).
    let w = common::workload(json!({"owner": "GBR", "confidentiality": {"policy": "TLPX", "classification": "AMBER",
        "categories": [{"tagName": "Jurisdiction", "values": ["EU"]}],
        "alternatives": [{"policy": "UK", "classification": "SECRET", "categories": [{"tagName": "Eyes Only", "values": ["US"]}]}]}}));
    let (r, m) = reason(&decide(&w, &snap, &History::default(), t(0)), "uk-1");
    assert_eq!(r, "NotReleasable", "{m}");
}

#[test]
fn a_permissive_category_is_one_per_name_and_any_of_its_values_is_enough() {
    // Marshal's grouping: one category per tag name; a permissive category holds when one of its values is held
    // (spiffing's C++ ACDF groups by name the same way). Two tags of one name cannot be imported (next test).
    let f = food();
    let mut w = f.workloads.iter().find(|w| w.metadata.name.as_deref() == Some("milk-chocolate")).cloned().expect("w");
    // Flavour [Sweet, Chocolate]: all-okay holds Sweet only, and is permitted.
    w.metadata.name = Some("grouped".into());
    let d = decide(&WorkloadModel::from_crd(&w), &f.snap, &History::default(), t(0));
    assert_eq!(reason(&d, "all-okay").0, "Eligible");
}

const MINIMAL: &str = r#"<SPIF xmlns="http://www.xmlspif.org/spif">
  <securityPolicyId name="MINI" id="1.3.6.1.4.1.99999.9"/>
  <securityClassifications>
    <securityClassification name="LOW" lacv="1" hierarchy="1"/>
    <securityClassification name="HIGH" lacv="2" hierarchy="2"/>
  </securityClassifications>
  <securityCategoryTagSets>
    <securityCategoryTagSet name="Set A" id="1.3.6.1.4.1.99999.9.1">
      <securityCategoryTag name="Caveat" tagType="permissive">
        <tagCategory name="ONE" lacv="1"/>
      </securityCategoryTag>
    </securityCategoryTagSet>
  </securityCategoryTagSets>
</SPIF>"#;

#[test]
fn what_marshal_cannot_represent_is_refused_naming_the_element() {
    assert!(marshal::policy::import_texts(&[(PathBuf::from("mini.xml"), MINIMAL.to_string())]).is_ok());
    let with = |from: &str, to: &str| MINIMAL.replacen(from, to, 1);
    let cases = [
        ("an element outside the schema", with("<tagCategory name=\"ONE\" lacv=\"1\"/>", "<tagCategory name=\"ONE\" lacv=\"1\"><frobnicate/></tagCategory>"), "tagCategory \"ONE\" > frobnicate"),
        ("an unknown attribute", with("tagType=\"permissive\">", "tagType=\"permissive\" weight=\"3\">"), "weight"),
        ("an unknown tag type", with("tagType=\"permissive\"", "tagType=\"bitwise\""), "tagType \"bitwise\""),
        ("two tags of one name in two tag sets", with("</securityCategoryTagSets>", "<securityCategoryTagSet name=\"Set B\" id=\"1.3.6.1.4.1.99999.9.2\"><securityCategoryTag name=\"Caveat\" tagType=\"restrictive\"><tagCategory name=\"TWO\" lacv=\"1\"/></securityCategoryTag></securityCategoryTagSet></securityCategoryTagSets>"), "a second tag named \"Caveat\""),
        ("two classifications on one level", with("hierarchy=\"2\"", "hierarchy=\"1\""), "hierarchy 1 is also the hierarchy of \"LOW\""),
        ("an excluded class that does not exist", with("lacv=\"1\"/>\n      </securityCategoryTag>", "lacv=\"1\"><excludedClass>MEDIUM</excludedClass></tagCategory>\n      </securityCategoryTag>"), "no classification named \"MEDIUM\""),
        ("a requirement naming no tag set", with("<securityClassification name=\"HIGH\" lacv=\"2\" hierarchy=\"2\"/>", "<securityClassification name=\"HIGH\" lacv=\"2\" hierarchy=\"2\"><requiredCategory operation=\"all\"><categoryGroup tagSetRef=\"Set Z\" tagType=\"permissive\"/></requiredCategory></securityClassification>"), "no securityCategoryTagSet with name \"Set Z\""),
        ("a mapping to a policy whose SPIF is not given", with("<securityClassification name=\"LOW\" lacv=\"1\" hierarchy=\"1\"/>", "<securityClassification name=\"LOW\" lacv=\"1\" hierarchy=\"1\"><equivalentClassification policyRef=\"OTHER\" lacv=\"1\" applied=\"both\"/></securityClassification>").replacen("<securityClassifications>", "<equivalentPolicies><equivalentPolicy name=\"OTHER\" id=\"1.2.3\"/></equivalentPolicies><securityClassifications>", 1), "not among the files given"),
        ("not a SPIF", "<policy/>".to_string(), "the root element must be SPIF"),
        ("not XML", "<SPIF>".to_string(), "not well-formed XML"),
    ];
    for (what, text, needle) in cases {
        let err = import_err(&[("mini.xml", &text)]);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.starts_with("mini.xml: "), "{what}: names the file: {err}");
    }
    // An equivalence that would add a choice of categories is refused, not guessed.
    let tlpx = std::fs::read_to_string(fixture("tlpx.xml")).expect("read").replacen(
        "<requiredCategory operation=\"all\">\n        <categoryGroup tagSetRef=\"Additional Information\" tagType=\"tagType7\" lacv=\"1\"/>",
        "<requiredCategory operation=\"oneOrMore\">\n        <categoryGroup tagSetRef=\"Additional Information\" tagType=\"tagType7\" lacv=\"1\"/>",
        1,
    );
    let tlp = std::fs::read_to_string(fixture("tlp.xml")).expect("read");
    let uk = std::fs::read_to_string(fixture("uk-demo.xml")).expect("read");
    let err = import_err(&[("tlpx.xml", &tlpx), ("tlp.xml", &tlp), ("uk-demo.xml", &uk)]);
    assert!(err.contains("oneOrMore") && err.contains("equivalentPolicy \"TLP\""), "{err}");
}

#[test]
fn the_command_prints_what_the_library_imports() {
    let out = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(["policy", "import", fixture("food.xml").to_str().expect("path"), "-o", "yaml"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: SecurityPolicy = serde_yaml::from_slice(&out.stdout).expect("one SecurityPolicy");
    let imported = &import(&["food.xml"])[0];
    assert_eq!((&printed.metadata.name, &printed.spec), (&imported.metadata.name, &imported.spec));
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("presentation only") && note.contains("markingData"), "skipped elements are named: {note}");
    let out = Command::new(env!("CARGO_BIN_EXE_marshal"))
        .args(["policy", "import", fixture("food-duplicate-excluded-class.xml").to_str().expect("path")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicate excluded classification"));
}

#[test]
fn the_baltic_policy_is_the_import_of_its_spif() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/baltic");
    let imported = marshal::policy::import_files(&[root.join("nato-spif.xml")]).expect("import");
    let on_disk: SecurityPolicy =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("00-security-policy.yaml")).expect("read"))
            .expect("policy");
    assert_eq!(imported.len(), 1);
    assert_eq!(
        (&imported[0].metadata.name, &imported[0].spec),
        (&on_disk.metadata.name, &on_disk.spec),
        "regenerate with: marshal policy import examples/baltic/nato-spif.xml"
    );
}
