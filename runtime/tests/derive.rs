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
    unsafe { &*buf.as_ptr().add(off).cast::<Repr<T>>() }
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
    // Behind pointers (which use the shallow fingerprint) too.
    assert_ne!(
        <Vec<Pair<u8>> as Shared>::FINGERPRINT,
        <Vec<Pair<u16>> as Shared>::FINGERPRINT
    );
    assert_ne!(
        <Box<Maybe<u8>> as Shared>::FINGERPRINT,
        <Box<Maybe<i8>> as Shared>::FINGERPRINT
    );
    assert_ne!(
        <Vec<Tree> as Shared>::FINGERPRINT,
        <Vec<Forest> as Shared>::FINGERPRINT
    );
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
            Pin::new_unchecked(&mut *buf.as_mut_ptr().add(off).cast::<SharedEverything>())
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
        SharedAligned::E { z, .. } => std::ptr::from_ref(z).addr() - buf.as_ptr().addr(),
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

/// Fieldless enums are `repr(u8)`.
#[derive(Shared, Debug, Clone, Copy, PartialEq)]
enum Level {
    Low,
    Mid,
    High,
}

/// A generic enum with data: the layout model is generic too.
#[derive(Shared, Debug, Clone, PartialEq)]
enum Maybe<T: Clone> {
    No,
    Yes(T, u8),
    Both { a: T, b: Vec<T> },
}

/// More than 256 variants: a `u16` tag.
#[rustfmt::skip]
#[derive(Shared, Debug, Clone, PartialEq)]
enum Wide { V0(u8), V1, V2, V3, V4, V5, V6, V7(u16), V8, V9, V10, V11, V12, V13, V14(u32), V15, V16, V17, V18, V19, V20, V21(u64), V22, V23, V24, V25, V26, V27, V28(u8), V29, V30, V31, V32, V33, V34, V35(u16), V36, V37, V38, V39, V40, V41, V42(u32), V43, V44, V45, V46, V47, V48, V49(u64), V50, V51, V52, V53, V54, V55, V56(u8), V57, V58, V59, V60, V61, V62, V63(u16), V64, V65, V66, V67, V68, V69, V70(u32), V71, V72, V73, V74, V75, V76, V77(u64), V78, V79, V80, V81, V82, V83, V84(u8), V85, V86, V87, V88, V89, V90, V91(u16), V92, V93, V94, V95, V96, V97, V98(u32), V99, V100, V101, V102, V103, V104, V105(u64), V106, V107, V108, V109, V110, V111, V112(u8), V113, V114, V115, V116, V117, V118, V119(u16), V120, V121, V122, V123, V124, V125, V126(u32), V127, V128, V129, V130, V131, V132, V133(u64), V134, V135, V136, V137, V138, V139, V140(u8), V141, V142, V143, V144, V145, V146, V147(u16), V148, V149, V150, V151, V152, V153, V154(u32), V155, V156, V157, V158, V159, V160, V161(u64), V162, V163, V164, V165, V166, V167, V168(u8), V169, V170, V171, V172, V173, V174, V175(u16), V176, V177, V178, V179, V180, V181, V182(u32), V183, V184, V185, V186, V187, V188, V189(u64), V190, V191, V192, V193, V194, V195, V196(u8), V197, V198, V199, V200, V201, V202, V203(u16), V204, V205, V206, V207, V208, V209, V210(u32), V211, V212, V213, V214, V215, V216, V217(u64), V218, V219, V220, V221, V222, V223, V224(u8), V225, V226, V227, V228, V229, V230, V231(u16), V232, V233, V234, V235, V236, V237, V238(u32), V239, V240, V241, V242, V243, V244, V245(u64), V246, V247, V248, V249, V250, V251, V252(u8), V253, V254, V255, V256, V257, V258, V259(u16), V260, V261, V262, V263, V264, V265, V266(u32), V267, V268, V269, V270, V271, V272, V273(u64), V274, V275, V276, V277, V278, V279, V280(u8), V281, V282, V283, V284, V285, V286, V287(u16), V288, V289, V290, V291, V292, V293, V294(u32), V295, V296, V297, V298, V299 }

#[test]
fn fieldless_generic_and_wide_enums() {
    for l in [Level::Low, Level::Mid, Level::High] {
        roundtrip(&l);
        region(&l);
    }
    assert_eq!(std::mem::size_of::<SharedLevel>(), 1);
    let (mut buf, off) = region(&Level::High);
    buf[off] = 3;
    assert_eq!(
        validate_region::<Level>(&buf, off),
        Err(Invalid::BadTag {
            ty: "Level",
            tag: 3
        })
    );

    for m in [
        Maybe::No,
        Maybe::Yes("y".to_string(), 2),
        Maybe::Both {
            a: "a".into(),
            b: vec!["b".into()],
        },
    ] {
        roundtrip(&m);
        region(&m);
    }
    for m in [
        Maybe::Yes(u128::MAX, 1),
        Maybe::Both {
            a: 3,
            b: vec![4, 5],
        },
    ] {
        roundtrip(&m);
        region(&m);
    }
    // `bool` payload after a `u8`: a corrupted bool is found through the
    // generic layout model.
    let (mut buf, off) = region(&Maybe::Yes(true, 9));
    let b = match root::<Maybe<bool>>(&buf, off) {
        SharedMaybe::Yes(b, _) => std::ptr::from_ref(b).addr() - buf.as_ptr().addr(),
        _ => unreachable!(),
    };
    buf[b] = 3;
    assert_eq!(
        validate_region::<Maybe<bool>>(&buf, off),
        Err(Invalid::BadBool(3))
    );

    assert_eq!(
        std::mem::size_of::<SharedWide>(),
        2 * std::mem::size_of::<u64>()
    );
    for w in [
        Wide::V0(0),
        Wide::V1,
        Wide::V7(1),
        Wide::V14(2),
        Wide::V21(3),
        Wide::V28(4),
        Wide::V299,
        Wide::V294(5),
    ] {
        roundtrip(&w);
        region(&w);
    }
    let (mut buf, off) = region(&Wide::V299);
    buf[off..off + 2].copy_from_slice(&300u16.to_ne_bytes());
    assert_eq!(
        validate_region::<Wide>(&buf, off),
        Err(Invalid::BadTag {
            ty: "Wide",
            tag: 300
        })
    );
    buf[off..off + 2].copy_from_slice(&299u16.to_ne_bytes());
    assert_eq!(validate_region::<Wide>(&buf, off), Ok(()));
}

mod fp_a {
    pub type F = u64;
    #[derive(mc::Shared)]
    pub struct Inner {
        pub g: F,
    }
}

mod fp_b {
    pub type F = String;
    #[derive(mc::Shared)]
    pub struct Inner {
        pub g: F,
    }
}

#[test]
fn same_names_in_other_modules_differ() {
    use mc::Shared;
    assert_ne!(
        <Vec<fp_a::Inner> as Shared>::FINGERPRINT,
        <Vec<fp_b::Inner> as Shared>::FINGERPRINT
    );
    assert_ne!(
        <Box<fp_a::Inner> as Shared>::FINGERPRINT,
        <Box<fp_b::Inner> as Shared>::FINGERPRINT
    );
    assert_ne!(
        <fp_a::Inner as Shared>::FINGERPRINT,
        <fp_b::Inner as Shared>::FINGERPRINT
    );
}
