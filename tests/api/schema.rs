//! `schema.graphql` is generated from the code; these fail when it drifts.

#[test]
fn schema_file_matches_the_code() {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the top level");
    let sdl = anchorfed::graphql::sdl();
    assert!(
        file == sdl,
        "schema.graphql is stale: run `cargo run -- export-schema > schema.graphql` and commit it"
    );
}

#[test]
fn export_schema_command_prints_the_sdl() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anchorfed"))
        .arg("export-schema")
        .output()
        .expect("run anchorfed export-schema");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        anchorfed::graphql::sdl()
    );
}
