//! `SEA_NATS_PROFILE`: the default profile of every command that takes `--profile`.

mod common;

use sea_infra::testing::assert_mentions;

#[test]
fn a_bogus_profile_exits_64_naming_the_variable_and_the_profiles() {
    for args in [
        &["up"][..],
        &["status"],
        &["drill", "node-kill"],
        &["verify"],
    ] {
        let out = common::xtask(args, &[("SEA_NATS_PROFILE", "bogus")]);
        assert_eq!(out.code, Some(64), "{args:?}: {}", out.all);
        assert_mentions(
            &out.all,
            &[
                "SEA_NATS_PROFILE=\"bogus\"",
                "use one of single, ha, mesh, leaf",
                "nats-ha",
            ],
        );
    }
}

#[test]
fn the_seeds_compose_names_select_a_profile_and_the_flag_wins() {
    let out = common::xtask(&["status", "--json"], &[("SEA_NATS_PROFILE", "nats-mesh")]);
    assert_eq!(out.code, Some(0), "{}", out.all);
    assert_eq!(out.json()["profile"], "mesh", "{}", out.all);
    let out = common::xtask(
        &["status", "--json", "--profile", "leaf"],
        &[("SEA_NATS_PROFILE", "nats-mesh")],
    );
    assert_eq!(out.json()["profile"], "leaf", "{}", out.all);
}
