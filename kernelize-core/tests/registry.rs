//! Dependency resolution: highest compatible versions, diamonds, conflicts, cycles, missing
//! plugins, backtracking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use kernelize_core::{Dependency, ErrorKind, Registry};
use semver::Version;
use support::{Probe, journal};

/// `(id, version, [(dependency id, requirement)])` for each plugin version.
type Spec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn registry(plugins: &[Spec<'_>]) -> Registry {
    let j = journal();
    let mut r = Registry::new();
    for (id, version, deps) in plugins {
        r.register(Probe::new(id, version, deps, &j).factory())
            .unwrap();
    }
    r
}

fn want(id: &str, req: &str) -> Dependency {
    Dependency::new(id, req).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

#[test]
fn picks_the_highest_version_that_satisfies_every_requirement() {
    let r = registry(&[
        ("a", "1.0.0", &[("c", ">=1.1")]),
        ("b", "1.0.0", &[("c", "<1.5")]),
        ("c", "1.0.0", &[]),
        ("c", "1.2.0", &[]),
        ("c", "1.4.9", &[]),
        ("c", "1.5.0", &[]),
        ("c", "2.0.0", &[]),
    ]);
    let res = r.resolve(&[want("a", "*"), want("b", "*")]).unwrap();
    assert_eq!(res.versions["c"], v("1.4.9"));
}

#[test]
fn diamond_resolves_shared_dependency_once_and_orders_dependencies_first() {
    let r = registry(&[
        ("app", "1.0.0", &[("left", "^1"), ("right", "^1")]),
        ("left", "1.0.0", &[("base", "^2")]),
        ("right", "1.3.0", &[("base", "^2.1")]),
        ("base", "2.0.0", &[]),
        ("base", "2.2.0", &[]),
        ("base", "3.0.0", &[]),
    ]);
    let res = r.resolve(&[want("app", "*")]).unwrap();
    assert_eq!(res.versions["base"], v("2.2.0"));
    assert_eq!(res.versions.len(), 4);
    let pos = |id: &str| res.order.iter().position(|x| x == id).unwrap();
    assert!(pos("base") < pos("left") && pos("base") < pos("right"));
    assert!(pos("left") < pos("app") && pos("right") < pos("app"));
}

#[test]
fn conflict_names_both_chains() {
    let r = registry(&[
        ("a", "1.2.0", &[("b", "^2"), ("c", "^2")]),
        ("b", "2.1.0", &[("c", "^1")]),
        ("c", "1.0.0", &[]),
        ("c", "2.0.0", &[]),
    ]);
    let err = r.resolve(&[want("a", "*")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dependency);
    let msg = err.to_string();
    assert!(msg.contains("a 1.2.0 -> b ^2 -> c ^1"), "{msg}");
    assert!(msg.contains("a 1.2.0 -> c ^2"), "{msg}");
    assert!(msg.contains("conflict on c"), "{msg}");
}

#[test]
fn backtracks_to_an_older_version_when_the_newest_conflicts() {
    let r = registry(&[
        ("a", "2.0.0", &[("c", "^2")]),
        ("a", "1.0.0", &[("c", "^1")]),
        ("b", "1.0.0", &[("c", "^1")]),
        ("c", "1.0.0", &[]),
        ("c", "2.0.0", &[]),
    ]);
    let res = r.resolve(&[want("b", "*"), want("a", "*")]).unwrap();
    assert_eq!(res.versions["a"], v("1.0.0"));
    assert_eq!(res.versions["c"], v("1.0.0"));
}

#[test]
fn cycle_is_an_error_naming_the_cycle() {
    let r = registry(&[
        ("a", "1.0.0", &[("b", "^1")]),
        ("b", "1.0.0", &[("c", "^1")]),
        ("c", "1.0.0", &[("a", "^1")]),
    ]);
    let err = r.resolve(&[want("a", "*")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dependency);
    let msg = err.to_string();
    assert!(msg.contains("dependency cycle"), "{msg}");
    assert!(msg.contains("a 1.0.0 -> b ^1 -> c ^1 -> a ^1"), "{msg}");
}

#[test]
fn missing_dependency_names_who_needs_it() {
    let r = registry(&[("a", "1.0.0", &[("ghost", "^1")])]);
    let err = r.resolve(&[want("a", "*")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`ghost` is not installed"), "{msg}");
    assert!(msg.contains("a 1.0.0 -> ghost ^1"), "{msg}");
}

#[test]
fn no_matching_version_lists_the_available_ones() {
    let r = registry(&[
        ("a", "1.0.0", &[("c", "^3")]),
        ("c", "1.0.0", &[]),
        ("c", "2.0.0", &[]),
    ]);
    let msg = r.resolve(&[want("a", "*")]).unwrap_err().to_string();
    assert!(msg.contains("a 1.0.0 -> c ^3"), "{msg}");
    assert!(msg.contains("available: 1.0.0, 2.0.0"), "{msg}");
}

#[test]
fn installing_the_same_version_twice_is_refused() {
    let j = journal();
    let mut r = Registry::new();
    r.register(Probe::new("a", "1.0.0", &[], &j).factory())
        .unwrap();
    let err = r
        .register(Probe::new("a", "1.0.0", &[], &j).factory())
        .unwrap_err();
    assert!(err.to_string().contains("already installed"), "{err}");
}

#[test]
fn invalid_ids_are_refused() {
    let j = journal();
    let mut r = Registry::new();
    let err = r
        .register(Probe::new("Bad Id", "1.0.0", &[], &j).factory())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
}
