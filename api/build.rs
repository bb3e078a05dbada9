//! GraphiQL, served from the binary (`http::graphiql`): its UMD bundle and React's are
//! taken from their npm packages at build time, each checked against the SHA-512
//! integrity the registry publishes, and embedded; nothing is fetched from a CDN at run
//! time, so the console works on networks that cannot reach one.
//!
//! The packages are fetched once per build directory. `TIERWISE_GRAPHIQL_ASSETS=<dir>`
//! takes the four files from a folder instead, for a build without the registry.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A package: its tarball, its `dist.integrity`, and the files taken from it (path in
/// the tarball, name served).
type Package = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PACKAGES: [Package; 3] = [
    (
        "https://registry.npmjs.org/graphiql/-/graphiql-3.8.3.tgz",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        &[
            ("package/graphiql.min.js", "graphiql.min.js"),
            ("package/graphiql.min.css", "graphiql.min.css"),
        ],
    ),
    (
        "https://registry.npmjs.org/react/-/react-18.3.1.tgz",
        "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
        &[(
            "package/umd/react.production.min.js",
            "react.production.min.js",
        )],
    ),
    (
        "https://registry.npmjs.org/react-dom/-/react-dom-18.3.1.tgz",
        "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
        &[(
            "package/umd/react-dom.production.min.js",
            "react-dom.production.min.js",
        )],
    ),
];

/// No package is larger than this (GraphiQL's is about 4 MiB).
const MAX_PACKAGE_BYTES: u64 = 64 * 1024 * 1024;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TIERWISE_GRAPHIQL_ASSETS");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("graphiql");
    std::fs::create_dir_all(&out).expect("creating the assets' folder");
    if let Ok(dir) = std::env::var("TIERWISE_GRAPHIQL_ASSETS") {
        for (_, _, files) in PACKAGES {
            for (_, name) in files {
                let from = Path::new(&dir).join(name);
                std::fs::copy(&from, out.join(name)).unwrap_or_else(|e| {
                    panic!(
                        "TIERWISE_GRAPHIQL_ASSETS: cannot copy {}: {e}",
                        from.display()
                    )
                });
            }
        }
        return;
    }
    for (url, integrity, files) in PACKAGES {
        if files.iter().all(|(_, name)| out.join(name).exists()) {
            continue;
        }
        let package = download(url);
        check_integrity(url, &package, integrity);
        extract(&package, files, &out);
    }
}

fn download(url: &str) -> Vec<u8> {
    let response = ureq::get(url).call().unwrap_or_else(|e| {
        panic!(
            "fetching {url} for GraphiQL's assets failed: {e}\n\
             (a build without the npm registry can set TIERWISE_GRAPHIQL_ASSETS to a folder holding them)"
        )
    });
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_PACKAGE_BYTES)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("reading {url}: {e}"));
    bytes
}

fn check_integrity(url: &str, package: &[u8], integrity: &str) {
    use base64::Engine as _;
    use sha2::{Digest, Sha512};
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(package));
    let expected = integrity.trim_start_matches("sha512-");
    assert_eq!(
        digest, expected,
        "{url} is not the package the registry published (its SHA-512 differs)"
    );
}

fn extract(package: &[u8], files: &[(&str, &str)], out: &Path) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(package));
    let mut found = 0;
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        if let Some((_, name)) = files.iter().find(|(inside, _)| *inside == path) {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).expect("reading an entry");
            std::fs::write(out.join(name), contents).expect("writing an asset");
            found += 1;
        }
    }
    assert_eq!(found, files.len(), "a package lacks one of {files:?}");
}
