//! The derive's output compiles without the prelude and without imports:
//! every path it emits is absolute.

#![no_implicit_prelude]
#![allow(dead_code)]

#[derive(::mc::Shared, ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
struct Job {
    name: ::std::string::String,
    weights: ::std::vec::Vec<f64>,
    parent: ::core::option::Option<::std::boxed::Box<Self>>,
    pair: (u8, bool),
}

#[derive(::mc::Shared, ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect {
        w: u32,
        h: u32,
        label: ::std::string::String,
    },
}

#[derive(::mc::Shared, ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
struct Pair<T: ::core::clone::Clone>
where
    T: ::core::fmt::Debug,
{
    a: T,
    b: ::std::vec::Vec<T>,
}

#[derive(::mc::Shared, ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
enum Maybe<T: ::core::clone::Clone> {
    No,
    Yes(T, u8),
    Both { a: T, b: ::std::vec::Vec<T> },
}

#[derive(::mc::Shared)]
struct Tuple(u8, ::std::string::String);

#[derive(::mc::Shared)]
struct Unit;

#[::core::prelude::v1::test]
fn hygienic_derives_work() {
    let job = Job {
        name: <::std::string::String as ::core::convert::From<&str>>::from("a"),
        weights: ::std::vec![1.0],
        parent: ::core::option::Option::None,
        pair: (1, true),
    };
    ::std::assert_eq!(::mc::value::roundtrip_local(&job).unwrap(), job);
    let shape = Shape::Rect {
        w: 1,
        h: 2,
        label: <::std::string::String as ::core::convert::From<&str>>::from("r"),
    };
    ::std::assert_eq!(::mc::value::roundtrip_local(&shape).unwrap(), shape);
    let pair = Pair {
        a: 1u8,
        b: ::std::vec![2],
    };
    ::std::assert_eq!(::mc::value::roundtrip_local(&pair).unwrap(), pair);
    let maybe = Maybe::Both {
        a: 1u16,
        b: ::std::vec![2, 3],
    };
    ::std::assert_eq!(::mc::value::roundtrip_local(&maybe).unwrap(), maybe);
}
