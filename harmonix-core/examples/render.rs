//! Render the stacks of a spec file into a directory.
//!
//! ```sh
//! cargo run -p harmonix-core --example render -- examples/specs/ecs.yaml out/
//! ```

use std::path::Path;
use std::process::ExitCode;

use harmonix_core::provider::Registry;
use harmonix_core::{render, spec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, out] = args.as_slice() else {
        eprintln!("usage: render SPEC.yaml OUT_DIR");
        return ExitCode::from(2);
    };
    let registry = Registry::builtin();
    let valid = match spec::load(Path::new(file), &registry) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let result = render::stacks(&valid, &registry)
        .and_then(|stacks| render::write_stacks(&stacks, Path::new(out)));
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
