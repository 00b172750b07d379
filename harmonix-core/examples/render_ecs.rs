fn main() {
    let reg = harmonix_core::provider::Registry::builtin();
    let path = std::env::args().nth(1).expect("path");
    let spec = harmonix_core::spec::load(std::path::Path::new(&path), &reg).unwrap();
    let stacks = harmonix_core::render::stacks(&spec, &reg).unwrap();
    harmonix_core::render::write_stacks(&stacks, std::path::Path::new("/tmp/render")).unwrap();
}
