//! `#[derive(Shared)]`: round trips, fingerprints, validation of copied
//! bytes, layout of derived enums, projections.

// Fields read only by derived impls count as never read (as for
// `derive(Debug)`); these test types exist to be copied.
#![allow(dead_code)]

use std::pin::Pin;

use mc::value::{copy_into_region, roundtrip_local, validate_region, Invalid};
use mc::{Repr, Shared};
use proptest::prelude::*;

#[derive(Shared, Debug, Clone, PartialEq)]
struct Job {
    pub name: String,
    weights: Vec<f64>,
    parent: Option<Box<Job>>,
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Point(i32, i32);

#[derive(Shared, Debug, Clone, PartialEq)]
struct Unit;

#[derive(Shared, Debug, Clone, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u32, h: u32, label: String },
    Poly(Vec<Point>, bool),
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Pair<T: Clone>
where
    Vec<T>: PartialEq,
{
    a: T,
    b: Vec<T>,
}

#[derive(Shared, Debug, Clone, PartialEq)]
enum Tree {
    Leaf(u64),
    Node(Vec<Tree>),
}

/// Mutually recursive with `Forest`.
#[derive(Shared, Debug, Clone, PartialEq)]
struct Grove {
    trees: Vec<Forest>,
}

#[derive(Shared, Debug, Clone, PartialEq)]
enum Forest {
    Bare,
    Grove(Box<Grove>),
}

#[derive(Shared, Debug, Clone, PartialEq)]
struct Everything {
    s: String,
    v: Vec<u16>,
    b: Box<i8>,
    o: Option<char>,
    t: (u8, String, bool),
    a: [i64; 3],
    u8_: u8,
    u16_: u16,
    u32_: u32,
    u64_: u64,
    u128_: u128,
    usize_: usize,
    i8_: i8,
    i16_: i16,
    i32_: i32,
    i64_: i64,
    i128_: i128,
    isize_: isize,
    f32_: f32,
    f64_: f64,
    bool_: bool,
    char_: char,
    unit: (),
    nested: Shape,
    generic: Pair<String>,
}

/// Every payload alignment: checks the enum layout model of `validate`.
#[derive(Shared, Debug, Clone, PartialEq)]
enum Aligned {
    A(u8),
    B(u64),
    C(u128),
    D(String),
    E { x: u8, y: u128, z: bool },
}

#[derive(Shared, Debug, Clone, PartialEq)]
#[shared(repr = Renamed)]
struct Named {
    x: u32,
}

fn job(depth: usize) -> Job {
    let mut j = Job {
        name: "root".into(),
        weights: vec![1.0, 2.5],
        parent: None,
    };
    for i in 0..depth {
        j = Job {
            name: format!("job {i}"),
            weights: vec![i as f64; i],
            parent: Some(Box::new(j)),
        };
    }
    j
}

fn everything() -> Everything {
    Everything {
        s: "héllo".into(),
        v: vec![1, 2, 3],
        b: Box::new(-4),
        o: Some('ß'),
        t: (5, "six".into(), true),
        a: [7, -8, 9],
        u8_: u8::MAX,
        u16_: u16::MAX,
        u32_: u32::MAX,
        u64_: u64::MAX,
        u128_: u128::MAX,
        usize_: usize::MAX,
        i8_: i8::MIN,
        i16_: i16::MIN,
        i32_: i32::MIN,
        i64_: i64::MIN,
        i128_: i128::MIN,
        isize_: isize::MIN,
        f32_: 1.5,
        f64_: -2.25,
        bool_: true,
        char_: '€',
        unit: (),
        nested: Shape::Rect {
            w: 3,
            h: 4,
            label: "r".into(),
        },
        generic: Pair {
            a: "a".into(),
            b: vec!["b".into(), "c".into()],
        },
    }
}

fn roundtrip<T: Shared + PartialEq + std::fmt::Debug>(v: &T) {
    assert_eq!(&roundtrip_local(v).unwrap(), v);
}

/// Copies into a fresh region and validates it; returns the buffer and the
/// root offset.
fn region<T: Shared>(v: &T) -> (Vec<u8>, usize) {
    let mut buf = vec![0u8; 1 << 16];
    let off = copy_into_region(v, &mut buf).unwrap();
    assert_eq!(validate_region::<T>(&buf, off), Ok(()));
    (buf, off)
}

/// The root of a validated region.
fn root<T: Shared>(buf: &[u8], off: usize) -> &Repr<T> {
    validate_region::<T>(buf, off).unwrap();
    // SAFETY: validated just above; the region outlives the reference.
    unsafe { &*(buf.as_ptr().add(off) as *const Repr<T>) }
}

#[test]
fn structs_roundtrip() {
    roundtrip(&job(0));
    roundtrip(&job(5));
    roundtrip(&Point(-1, 2));
    roundtrip(&Unit);
    roundtrip(&Named { x: 3 });
    roundtrip(&everything());
}

#[test]
fn enums_roundtrip() {
    for s in [
        Shape::Empty,
        Shape::Circle(1.5),
        Shape::Rect {
            w: 1,
            h: 2,
            label: "x".into(),
        },
        Shape::Poly(vec![Point(1, 2), Point(3, 4)], true),
    ] {
        roundtrip(&s);
    }
    roundtrip(&Tree::Node(vec![
        Tree::Leaf(1),
        Tree::Node(vec![]),
        Tree::Node(vec![Tree::Leaf(2)]),
    ]));
    roundtrip(&Grove {
        trees: vec![
            Forest::Bare,
            Forest::Grove(Box::new(Grove {
                trees: vec![Forest::Bare],
            })),
        ],
    });
    for a in [
        Aligned::A(1),
        Aligned::B(u64::MAX),
        Aligned::C(u128::MAX - 1),
        Aligned::D("d".into()),
        Aligned::E {
            x: 1,
            y: 2,
            z: true,
        },
    ] {
        roundtrip(&a);
    }
}

#[test]
fn generics_roundtrip() {
    roundtrip(&Pair {
        a: 1u8,
        b: vec![2, 3],
    });
    roundtrip(&Pair {
        a: Some("x".to_string()),
        b: vec![None, Some("y".into())],
    });
    roundtrip(&Pair {
        a: Point(1, 2),
        b: vec![],
    });
}

#[test]
fn fingerprints() {
    // Stable across evaluations.
    assert_eq!(<Job as Shared>::FINGERPRINT, <Job as Shared>::FINGERPRINT);
    let fps = [
        <Job as Shared>::FINGERPRINT,
        <Point as Shared>::FINGERPRINT,
        <Unit as Shared>::FINGERPRINT,
        <Shape as Shared>::FINGERPRINT,
        <Pair<u8> as Shared>::FINGERPRINT,
        <Pair<u16> as Shared>::FINGERPRINT,
        <Tree as Shared>::FINGERPRINT,
        <Grove as Shared>::FINGERPRINT,
        <Forest as Shared>::FINGERPRINT,
        <Everything as Shared>::FINGERPRINT,
        <Aligned as Shared>::FINGERPRINT,
        <Named as Shared>::FINGERPRINT,
    ];
    for (i, a) in fps.iter().enumerate() {
        for b in &fps[i + 1..] {
            assert_ne!(a, b);
        }
    }

    // Same shape, other names or other field order: other fingerprints.
    #[derive(Shared)]
    struct P1 {
        x: u32,
        y: u32,
    }
    #[derive(Shared)]
    struct P2 {
        y: u32,
        x: u32,
    }
    #[derive(Shared)]
    struct P3 {
        x: u32,
        y: u64,
    }
    assert_ne!(<P1 as Shared>::FINGERPRINT, <P2 as Shared>::FINGERPRINT);
    assert_ne!(<P1 as Shared>::FINGERPRINT, <P3 as Shared>::FINGERPRINT);
}

#[test]
fn flags() {
    const { assert!(<Job as Shared>::HAS_POINTERS) };
    const { assert!(!<Point as Shared>::HAS_POINTERS) };
    const { assert!(!<Unit as Shared>::HAS_POINTERS) };
    const { assert!(<Shape as Shared>::HAS_POINTERS) };
    const { assert!(<Pair<u8> as Shared>::HAS_POINTERS) };
    const { assert!(!<Point as Shared>::IS_POD) };
}

#[test]
fn twin_types_read_in_place() {
    let j = job(2);
    let (buf, off) = region(&j);
    let r: &SharedJob = root::<Job>(&buf, off);
    assert_eq!(&*r.name, "job 1");
    assert_eq!(&r.weights[..], &[1.0]);
    let parent = r.parent.as_ref().unwrap();
    assert_eq!(&*parent.name, "job 0");
    assert_eq!(format!("{r:?}"), format!("{j:?}"));

    let s = Shape::Poly(vec![Point(1, 2)], false);
    let (buf, off) = region(&s);
    let r: &SharedShape = root::<Shape>(&buf, off);
    match r {
        SharedShape::Poly(points, b) => {
            assert_eq!(points.len(), 1);
            assert_eq!((points[0].0, points[0].1), (1, 2));
            assert!(!*b);
        }
        other => panic!("wrong variant {other:?}"),
    }
    assert_eq!(format!("{r:?}"), format!("{s:?}"));
    let _: &Renamed = root::<Named>(&region(&Named { x: 1 }).0, 0);
}

#[test]
fn projection_modifies_in_place() {
    let (mut buf, off) = region(&Everything {
        u32_: 1,
        ..everything()
    });
    {
        // SAFETY: the region was validated and is exclusively borrowed.
        let r = unsafe {
            Pin::new_unchecked(&mut *(buf.as_mut_ptr().add(off) as *mut SharedEverything))
        };
        let p = r.project();
        *p.u32_.get_mut() = 42;
        *p.bool_.get_mut() = false;
        if let Some(x) = p.v.get_pin(1) {
            *x.get_mut() = 20;
        }
        match p.nested.project() {
            SharedShapeMut::Rect { w, .. } => *w.get_mut() = 30,
            _ => panic!("wrong variant"),
        }
    }
    let back = <Everything as Shared>::from_repr(root::<Everything>(&buf, off));
    assert_eq!(
        back,
        Everything {
            u32_: 42,
            bool_: false,
            v: vec![1, 20, 3],
            nested: Shape::Rect {
                w: 30,
                h: 4,
                label: "r".into()
            },
            ..everything()
        }
    );

    // Pointer-free twins are `Unpin`; pointer-carrying ones are not.
    fn unpin<T: Unpin>() {}
    unpin::<SharedPoint>();
    unpin::<SharedUnit>();
    unpin::<Renamed>();
}

#[test]
fn validation_accepts_copies() {
    region(&job(10));
    region(&everything());
    region(&Tree::Node(vec![
        Tree::Leaf(1),
        Tree::Node(vec![Tree::Leaf(2)]),
    ]));
    for a in [
        Aligned::A(1),
        Aligned::B(2),
        Aligned::C(3),
        Aligned::D("dd".into()),
        Aligned::E {
            x: 1,
            y: 2,
            z: true,
        },
    ] {
        region(&a);
    }
}

/// The offset of the first pointer-sized word equal to `addr` in the root.
fn find_word(buf: &[u8], from: usize, to: usize, word: usize) -> usize {
    (from..to)
        .step_by(8)
        .find(|&i| usize::from_ne_bytes(buf[i..i + 8].try_into().unwrap()) == word)
        .expect("word not found")
}

#[test]
fn validation_rejects_pointers_outside() {
    let j = Job {
        name: "abc".into(),
        weights: vec![],
        parent: None,
    };
    let (mut buf, off) = region(&j);
    // The string bytes are the first allocation after the root.
    let r = root::<Job>(&buf, off);
    let str_addr = r.name.as_ptr() as usize;
    let at = find_word(&buf, off, off + std::mem::size_of::<SharedJob>(), str_addr);
    let outside = buf.as_ptr() as usize + buf.len() - 1;
    buf[at..at + 8].copy_from_slice(&outside.to_ne_bytes());
    assert!(matches!(
        validate_region::<Job>(&buf, off),
        Err(Invalid::OutOfRegion { .. })
    ));
    buf[at..at + 8].copy_from_slice(&0x10usize.to_ne_bytes());
    assert!(matches!(
        validate_region::<Job>(&buf, off),
        Err(Invalid::OutOfRegion { .. })
    ));
    // The root itself outside.
    assert!(matches!(
        validate_region::<Job>(&buf, buf.len()),
        Err(Invalid::OutOfRegion { .. })
    ));
}

#[test]
fn validation_rejects_bad_tags() {
    for (v, tags) in [(Shape::Circle(1.0), 4u8), (Shape::Empty, 4)] {
        let (mut buf, off) = region(&v);
        for bad in [tags, 5, 200, 255] {
            buf[off] = bad;
            assert_eq!(
                validate_region::<Shape>(&buf, off),
                Err(Invalid::BadTag {
                    ty: "Shape",
                    tag: u32::from(bad)
                })
            );
        }
    }
    let (mut buf, off) = region(&Aligned::C(7));
    buf[off] = 5;
    assert_eq!(
        validate_region::<Aligned>(&buf, off),
        Err(Invalid::BadTag {
            ty: "Aligned",
            tag: 5
        })
    );
    // A tag naming another valid variant is accepted when its payload is
    // valid too (here: `B(u64)` over the bytes of `C(u128)`).
    buf[off] = 1;
    assert_eq!(validate_region::<Aligned>(&buf, off), Ok(()));
}

/// Where the compiler put `z` of `SharedAligned::E` (an offset in `buf`).
fn offset_of_z(buf: &[u8], off: usize) -> usize {
    match root::<Aligned>(buf, off) {
        SharedAligned::E { z, .. } => z as *const bool as usize - buf.as_ptr() as usize,
        _ => unreachable!(),
    }
}

#[test]
fn validation_rejects_bad_bytes() {
    // bool
    let (mut buf, off) = region(&Aligned::E {
        x: 1,
        y: 2,
        z: true,
    });
    let z = offset_of_z(&buf, off);
    buf[z] = 2;
    assert_eq!(
        validate_region::<Aligned>(&buf, off),
        Err(Invalid::BadBool(2))
    );

    // UTF-8
    let (mut buf, off) = region(&Aligned::D("abc".into()));
    let s = match root::<Aligned>(&buf, off) {
        SharedAligned::D(s) => s.as_ptr() as usize - buf.as_ptr() as usize,
        _ => unreachable!(),
    };
    buf[s + 1] = 0xff;
    assert_eq!(validate_region::<Aligned>(&buf, off), Err(Invalid::BadUtf8));

    // char inside a nested struct
    let (mut buf, off) = region(&('a', 1u8));
    let c = (off..off + 4).find(|&i| buf[i] == b'a').unwrap();
    buf[c..c + 4].copy_from_slice(&0xD800u32.to_ne_bytes());
    assert_eq!(
        validate_region::<(char, u8)>(&buf, off),
        Err(Invalid::BadChar(0xD800))
    );
}

#[test]
fn enum_layout_model_matches_the_compiler() {
    // The payload offsets `validate` computes must be where the compiler
    // puts the fields: copy in, then find each field's value at the offset
    // the model gives.
    fn payload_at<T: Shared>(v: &T, expect: &[u8]) {
        let (buf, off) = region(v);
        let size = std::mem::size_of::<Repr<T>>();
        let bytes = &buf[off..off + size];
        assert!(bytes.windows(expect.len()).any(|w| w == expect));
    }
    payload_at(
        &Aligned::B(0x0102_0304_0506_0708),
        &0x0102_0304_0506_0708u64.to_ne_bytes(),
    );
    payload_at(&Aligned::C(u128::MAX - 1), &(u128::MAX - 1).to_ne_bytes());
    // The real check: validation reads `bool`s through the model's
    // offsets, and flags exactly the corrupted byte.
    let (buf, off) = region(&Aligned::E {
        x: 0,
        y: 0,
        z: true,
    });
    let size = std::mem::size_of::<SharedAligned>();
    let z = offset_of_z(&buf, off);
    for i in off + 1..off + size {
        let mut b = buf.clone();
        b[i] = 7;
        let r = validate_region::<Aligned>(&b, off);
        if i == z {
            assert_eq!(r, Err(Invalid::BadBool(7)));
        } else {
            assert_eq!(r, Ok(()), "byte {}", i - off);
        }
    }
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Shape::Circle),
        (any::<u32>(), any::<u32>(), ".*").prop_map(|(w, h, label)| Shape::Rect { w, h, label }),
        (
            prop::collection::vec((any::<i32>(), any::<i32>()), 0..5),
            any::<bool>()
        )
            .prop_map(|(ps, b)| Shape::Poly(ps.into_iter().map(|(x, y)| Point(x, y)).collect(), b)),
    ]
}

fn arb_job() -> impl Strategy<Value = Job> {
    let leaf = (".*", prop::collection::vec(-1e9f64..1e9, 0..4)).prop_map(|(name, weights)| Job {
        name,
        weights,
        parent: None,
    });
    leaf.prop_recursive(4, 16, 1, |inner| {
        (
            ".*",
            prop::collection::vec(-1e9f64..1e9, 0..4),
            prop::option::of(inner),
        )
            .prop_map(|(name, weights, parent)| Job {
                name,
                weights,
                parent: parent.map(Box::new),
            })
    })
}

proptest! {
    #[test]
    fn random_values_survive(job in arb_job(), shapes in prop::collection::vec(arb_shape(), 0..6)) {
        let v = (job, shapes);
        prop_assert_eq!(&roundtrip_local(&v).unwrap(), &v);
        let mut buf = vec![0u8; 1 << 16];
        let off = copy_into_region(&v, &mut buf).unwrap();
        prop_assert_eq!(validate_region::<(Job, Vec<Shape>)>(&buf, off), Ok(()));
        let back = <(Job, Vec<Shape>) as Shared>::from_repr(root::<(Job, Vec<Shape>)>(&buf, off));
        prop_assert_eq!(back, v);
    }
}

/// Raw identifiers as field names.
#[derive(Shared, Debug, Clone, PartialEq)]
struct Keywords {
    r#type: u8,
    r#match: String,
}

#[test]
fn raw_identifiers() {
    roundtrip(&Keywords {
        r#type: 1,
        r#match: "m".into(),
    });
    assert_eq!(
        format!(
            "{:?}",
            root::<Keywords>(
                &region(&Keywords {
                    r#type: 1,
                    r#match: "m".into()
                })
                .0,
                0
            )
        ),
        "Keywords { type: 1, match: \"m\" }"
    );
}
