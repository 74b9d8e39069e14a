//! The OpenAPI document is kept in the repository as YAML; its JSON form is made here so that
//! the function serves both without parsing anything at run time.

use std::path::PathBuf;

fn main() {
    let source = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../docs/openapi.yaml");
    println!("cargo::rerun-if-changed={}", source.display());
    let yaml = std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let document: serde_json::Value =
        serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("openapi.yaml"), &yaml).unwrap();
    std::fs::write(out.join("openapi.json"), document.to_string()).unwrap();
    // The routes, "METHOD path" a line, for answering requests that no route serves.
    let mut routes = String::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "put", "post", "delete", "head", "patch"].contains(&method.as_str()) {
                routes.push_str(&format!("{} {path}\n", method.to_ascii_uppercase()));
            }
        }
    }
    std::fs::write(out.join("routes.txt"), routes).unwrap();
}
