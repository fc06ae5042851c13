//! The op registry: portable ops and composites round-trip through their wire form; unknown
//! names, local closures and corrupt bytes are errors, never panics.

use std::sync::Arc;

use proptest::prelude::*;
use rask_graph::optimize::fuse_linear;
use rask_graph::{
    COMPOSITE_OP, Composite, Graph, Op, OpRegistry, RaskError, Result, Step, StepArg, Value,
    decode_params, encode_params,
};

use crate::common::*;

const ADD_CONST: &str = "test.add_const";

/// Portable: `c + sum(inputs)`, wrapping.
struct AddConst(i64);

impl Op for AddConst {
    fn name(&self) -> &str {
        ADD_CONST
    }
    fn params(&self) -> Option<Vec<u8>> {
        encode_params(ADD_CONST, &self.0)
    }
    fn execute(&self, inputs: &[Value]) -> Result<Value> {
        let mut s = self.0;
        for i in 0..inputs.len() {
            s = s.wrapping_add(int_input(inputs, i, ADD_CONST)?);
        }
        Ok(Value::new(s))
    }
}

fn decode_add_const(params: &[u8], _registry: &OpRegistry) -> Result<Arc<dyn Op>> {
    Ok(Arc::new(AddConst(decode_params(ADD_CONST, params)?)))
}

rask_graph::register_op!(ADD_CONST, decode_add_const);

/// Claims to be portable, but no decoder is registered under its name.
struct Unregistered;
impl Op for Unregistered {
    fn name(&self) -> &str {
        "test.unregistered"
    }
    fn params(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn execute(&self, _inputs: &[Value]) -> Result<Value> {
        Ok(Value::new(0i64))
    }
}

/// The arguments of a [`Step`].
fn args<const N: usize>(a: [StepArg; N]) -> smallvec::SmallVec<[StepArg; 2]> {
    a.into_iter().collect()
}

fn run(op: &dyn Op, inputs: &[i64]) -> i64 {
    let inputs: Vec<Value> = inputs.iter().map(|&v| Value::new(v)).collect();
    *op.execute(&inputs).unwrap().get::<i64>(&op.name()).unwrap()
}

fn round_trip(op: &dyn Op) -> Arc<dyn Op> {
    let (name, params) = OpRegistry::encode(op).expect("portable op encodes");
    OpRegistry::global()
        .decode(&name, &params)
        .expect("encoded op decodes")
}

#[test]
fn portable_op_round_trips() {
    assert!(OpRegistry::global().contains(ADD_CONST));
    for c in [0, 1, -1, 42, i64::MIN, i64::MAX] {
        let op = AddConst(c);
        let (name, params) = OpRegistry::encode(&op).unwrap();
        assert_eq!(name, ADD_CONST);
        assert_eq!(decode_params::<i64>(ADD_CONST, &params).unwrap(), c);
        let back = OpRegistry::global().decode(&name, &params).unwrap();
        assert_eq!(back.name(), ADD_CONST);
        assert_eq!(back.params().unwrap(), params);
        for inputs in [&[][..], &[3], &[3, 4], &[-5, 6, 7]] {
            let expected = inputs.iter().fold(c, |s, &v| s.wrapping_add(v));
            assert_eq!(run(&op, inputs), expected);
            assert_eq!(run(&*back, inputs), expected);
        }
    }
}

#[test]
fn fused_chain_of_portable_ops_round_trips() {
    // src (no inputs) -> a -> b, all portable: one composite task with no inputs.
    let g = Graph::from_specs([
        spec("src", op(AddConst(5)), &[]),
        spec("a", op(AddConst(-2)), &["src"]),
        spec("b", op(AddConst(100)), &["a"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["b"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_eq!(fused.len(), 1);
    let composite = fused.task(new_ids[0]).op.clone();
    assert_eq!(composite.as_composite().unwrap().steps().len(), 3);
    let (name, _) = OpRegistry::encode(&*composite).unwrap();
    assert_eq!(name, COMPOSITE_OP);
    let back = round_trip(&*composite);
    let steps = back.as_composite().expect("decodes as a composite").steps();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s.op.name() == ADD_CONST));
    assert_eq!(run(&*composite, &[]), 5 - 2 + 100);
    assert_eq!(run(&*back, &[]), 5 - 2 + 100);
    assert_eq!(back.params(), composite.params());
}

#[test]
fn fused_chain_with_an_input_round_trips() {
    // x is requested, so x -> a -> b fuses into one task `b` reading x.
    let g = Graph::from_specs([
        spec("x", op(Const(10)), &[]),
        spec("a", op(AddConst(1)), &["x"]),
        spec("b", op(AddConst(2)), &["a"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["x", "b"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    assert_eq!(fused.len(), 2);
    let task = fused.task(new_ids[1]);
    assert_eq!(task.deps.as_slice(), [new_ids[0]]);
    let back = round_trip(&*task.op);
    for x in [10, -7, 0] {
        assert_eq!(run(&*task.op, &[x]), x + 3);
        assert_eq!(run(&*back, &[x]), x + 3);
    }
    assert_eq!(int_values(&fused, &new_ids), [10, 13]);
}

#[test]
fn composite_with_shared_inputs_round_trips() {
    // Step 0: c0 = 1 + in0 + in1; step 1: c1 = 10 + c0 + in0 + c0.
    let steps = vec![
        Step {
            op: Arc::new(AddConst(1)),
            args: args([StepArg::Input(0), StepArg::Input(1)]),
        },
        Step {
            op: Arc::new(AddConst(10)),
            args: args([StepArg::Step(0), StepArg::Input(0), StepArg::Step(0)]),
        },
    ];
    let composite = Composite::new(steps, 2).unwrap();
    let back = round_trip(&composite);
    // in0 = 3, in1 = 4: c0 = 8, c1 = 10 + 8 + 3 + 8 = 29.
    assert_eq!(run(&composite, &[3, 4]), 29);
    assert_eq!(run(&*back, &[3, 4]), 29);
}

#[test]
fn nested_composite_round_trips() {
    // Composite::new accepts any op as a step, composites included, and such a composite
    // reports itself portable; its wire form must then decode.
    let inner = Composite::new(
        vec![
            Step {
                op: Arc::new(AddConst(1)),
                args: args([StepArg::Input(0)]),
            },
            Step {
                op: Arc::new(AddConst(2)),
                args: args([StepArg::Step(0)]),
            },
        ],
        1,
    )
    .unwrap();
    let outer = Composite::new(
        vec![
            Step {
                op: Arc::new(inner),
                args: args([StepArg::Input(0)]),
            },
            Step {
                op: Arc::new(AddConst(100)),
                args: args([StepArg::Step(0), StepArg::Input(0)]),
            },
        ],
        1,
    )
    .unwrap();
    assert!(outer.params().is_some());
    let back = round_trip(&outer);
    // x = 5: inner = 8, outer = 100 + 8 + 5 = 113.
    assert_eq!(run(&outer, &[5]), 113);
    assert_eq!(run(&*back, &[5]), 113);
}

#[test]
fn unknown_op_is_named() {
    let err = OpRegistry::global()
        .decode("test.no_such_op", &[])
        .unwrap_err();
    match &err {
        RaskError::UnknownOp(name) => assert_eq!(name, "test.no_such_op"),
        other => panic!("expected UnknownOp, got {other:?}"),
    }
    assert!(err.to_string().contains("test.no_such_op"), "{err}");
    assert!(!OpRegistry::global().contains("test.no_such_op"));

    // A composite whose step was never registered fails on that step's name.
    let g = Graph::from_specs([
        spec("u", op(Unregistered), &[]),
        spec("a", op(AddConst(1)), &["u"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["a"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    let (name, params) = OpRegistry::encode(&*fused.task(new_ids[0]).op).unwrap();
    let err = OpRegistry::global().decode(&name, &params).unwrap_err();
    assert!(
        matches!(err.root_cause(), RaskError::UnknownOp(n) if n == "test.unregistered"),
        "{err:?}"
    );
}

#[test]
fn non_portable_op_does_not_encode() {
    let err = OpRegistry::encode(&Inc).unwrap_err();
    assert!(matches!(err, RaskError::Serialization { .. }), "{err:?}");
    assert!(err.to_string().contains("`inc`"), "{err}");

    // A composite with one local step is not portable either, and says which composite.
    let g = Graph::from_specs([
        spec("a", op(AddConst(1)), &[]),
        spec("b", op(Inc), &["a"]),
        spec("c", op(AddConst(2)), &["b"]),
    ])
    .unwrap();
    let ids = g.ids_of(&keys(&["c"])).unwrap();
    let (fused, new_ids) = fuse_linear(g.clone(), &ids);
    let op = &fused.task(new_ids[0]).op;
    assert!(op.params().is_none());
    let err = OpRegistry::encode(&**op).unwrap_err();
    assert!(matches!(err, RaskError::Serialization { .. }), "{err:?}");
    assert!(err.to_string().contains("inc"), "{err}");
}

fn assert_serialization_error(result: Result<Arc<dyn Op>>, what: &str) {
    match result {
        Err(RaskError::Serialization { .. }) => {}
        Err(other) => panic!("{what}: expected a Serialization error, got {other:?}"),
        Ok(op) => panic!("{what}: decoded {op:?} from corrupt bytes"),
    }
}

#[test]
fn corrupt_params_are_serialization_errors() {
    let reg = OpRegistry::global();
    // An i64 is a zigzag varint: nothing, or a varint whose continuation bit never ends.
    assert_serialization_error(reg.decode(ADD_CONST, &[]), "empty");
    assert_serialization_error(reg.decode(ADD_CONST, &[0x80]), "unterminated varint");
    assert_serialization_error(reg.decode(ADD_CONST, &[0xff; 11]), "overlong varint");
    let err = reg.decode(ADD_CONST, &[]).unwrap_err();
    assert!(err.to_string().contains(ADD_CONST), "{err}");

    assert_serialization_error(reg.decode(COMPOSITE_OP, &[]), "empty composite");
    assert_serialization_error(reg.decode(COMPOSITE_OP, &[0xff, 0xff]), "garbage composite");
    // Every strict prefix of a valid composite is cut short somewhere.
    let composite = Composite::new(
        vec![
            Step {
                op: Arc::new(AddConst(300)),
                args: args([StepArg::Input(0)]),
            },
            Step {
                op: Arc::new(AddConst(-7)),
                args: args([StepArg::Step(0), StepArg::Input(1)]),
            },
        ],
        2,
    )
    .unwrap();
    let bytes = composite.params().unwrap();
    for cut in 0..bytes.len() {
        assert_serialization_error(
            reg.decode(COMPOSITE_OP, &bytes[..cut]),
            &format!("prefix {cut}"),
        );
    }
    assert_eq!(
        run(&*reg.decode(COMPOSITE_OP, &bytes).unwrap(), &[1, 2]),
        300 + 1 - 7 + 2
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let reg = OpRegistry::global();
        if let Ok(op) = reg.decode(ADD_CONST, &bytes) {
            // Decoding reads a complete varint at the front; the op holds that constant.
            let c: i64 = decode_params(ADD_CONST, &bytes).unwrap();
            prop_assert_eq!(run(&*op, &[]), c);
        }
        let _ = reg.decode(COMPOSITE_OP, &bytes);
    }

    #[test]
    fn flipped_composite_bytes_never_panic(flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let composite = Composite::new(
            vec![
                Step { op: Arc::new(AddConst(3)), args: args([StepArg::Input(0)]) },
                Step { op: Arc::new(AddConst(4)), args: args([StepArg::Step(0), StepArg::Input(0)]) },
            ],
            1,
        )
        .unwrap();
        let mut bytes = composite.params().unwrap();
        let i = flip.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let _ = OpRegistry::global().decode(COMPOSITE_OP, &bytes);
    }
}

#[test]
fn literals_round_trip_and_execute_to_the_same_value() {
    use rask_graph::{LITERAL_OP, Literal};
    assert!(OpRegistry::global().contains(LITERAL_OP));
    let values = [
        Value::new(42i64),
        Value::new(String::from("héllo")),
        Value::new(vec![1.5f64, -0.0, f64::INFINITY]),
        Value::new(Some(7u32)),
        Value::new((String::from("k"), 3i64)),
    ];
    for v in values {
        let lit = Literal::new(v.clone());
        let (name, params) = OpRegistry::encode(&lit).unwrap();
        assert_eq!(name, LITERAL_OP);
        let back = OpRegistry::global().decode(&name, &params).unwrap();
        assert_eq!(back.name(), LITERAL_OP);
        let out = back.execute(&[]).unwrap();
        assert_eq!(out.type_name(), v.type_name());
        // Same bytes in the portable form: the same value.
        assert_eq!(out.encode().unwrap(), v.encode().unwrap());
        assert_eq!(back.params().unwrap(), params);
    }
    let back = round_trip(&Literal::new(Value::new(vec![1i64, 2, 3])));
    let out = back.execute(&[]).unwrap();
    assert_eq!(out.get::<Vec<i64>>(&"lit").unwrap(), &vec![1, 2, 3]);
}

#[test]
fn literals_of_unportable_values_name_the_op() {
    use rask_graph::Literal;
    #[derive(Clone)]
    struct Local;
    impl rask_graph::Data for Local {}
    let err = OpRegistry::encode(&Literal::new(Value::new(Local)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rask.literal"), "{err}");
    // A corrupt literal (unknown tag, short bytes) is an error, not a panic.
    let bad = postcard::to_stdvec(&("no::Such", vec![1u8])).unwrap();
    let err = OpRegistry::global()
        .decode("rask.literal", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no::Such"), "{err}");
    let short = postcard::to_stdvec(&(std::any::type_name::<i64>(), vec![1u8])).unwrap();
    assert!(OpRegistry::global().decode("rask.literal", &short).is_err());
}

#[test]
fn the_registry_lists_sorted_names() {
    let names = OpRegistry::global().names();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(names.contains(&ADD_CONST) && names.contains(&"rask.literal"));
}
