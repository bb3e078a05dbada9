//! The README's two commands are the ones that work: `.ci/run` runs exactly its test
//! command.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The `sh` blocks of the README's "The two commands" section, in order.
fn the_two_commands() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## The two commands")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap()
        .to_owned();
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn ci_runs_the_readme_test_command() {
    let commands = the_two_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(commands[0], "cargo run --release");
    let ci = read(".ci/run");
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap();
    assert_eq!(
        last, commands[1],
        ".ci/run must end with the README's test command"
    );
}
