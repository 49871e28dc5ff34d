//! Definition loading and validation tests.

use super::*;

#[test]
fn the_built_in_library_is_valid() {
    let library = Library::built_in();
    assert_eq!(library.iter().count(), BUILT_IN.len());
}
