//! Runtime values: borrowed views of JSON data plus the few values expressions compute.
//!
//! Values borrow from the context's JSON and the template's literals, so lookups never clone.
//! Semantics follow Lua where SparkPost does: only `nil` and `false` are falsy, arithmetic
//! coerces numeric strings, and arrays/objects compare by identity.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value as Json};

use crate::ast::{BinOp, Escape};
use crate::escape::{write_escaped, EscapingWriter};

/// A value during evaluation; `'v` is the shortest of the data and template lifetimes.
#[derive(Debug, Clone)]
pub(crate) enum Value<'v> {
    Nil,
    Bool(bool),
    /// A number computed by an expression or written as a literal.
    Num(f64),
    /// A number straight from JSON, kept as is so large integers render exactly.
    JsonNum(&'v Number),
    Str(Cow<'v, str>),
    Array(&'v [Json]),
    Object(&'v Map<String, Json>),
}

impl<'v> Value<'v> {
    /// A borrowed view of a JSON value.
    pub fn from_json(json: &'v Json) -> Self {
        match json {
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::JsonNum(n),
            Json::String(s) => Value::Str(Cow::Borrowed(s)),
            Json::Array(items) => Value::Array(items),
            Json::Object(map) => Value::Object(map),
        }
    }

    /// A borrowed JSON value, or nil when absent.
    pub fn from_option(json: Option<&'v Json>) -> Self {
        json.map_or(Value::Nil, Value::from_json)
    }

    /// Lua truthiness: everything except `nil` and `false` is true.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }

    /// True for nil, the empty string, and empty arrays and objects.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Nil => true,
            Value::Str(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(map) => map.is_empty(),
            Value::Bool(_) | Value::Num(_) | Value::JsonNum(_) => false,
        }
    }

    /// The number this value stands for: numbers, and strings that parse as numbers.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::JsonNum(n) => n.as_f64(),
            Value::Str(s) => s.trim().parse().ok().filter(|n: &f64| n.is_finite()),
            _ => None,
        }
    }

    /// `#value`: element count of an array or character count of a string.
    pub fn length(&self) -> Value<'v> {
        let len = match self {
            Value::Array(items) => items.len(),
            Value::Str(s) => s.chars().count(),
            _ => return Value::Nil,
        };
        Value::Num(len as f64)
    }

    /// `value.key`: an object member; nil for anything else.
    pub fn field(&self, key: &str) -> Value<'v> {
        match self {
            Value::Object(map) => Value::from_option(map.get(key)),
            _ => Value::Nil,
        }
    }

    /// `value[key]`: 1-based for arrays; numbers index objects by their decimal form.
    pub fn index(&self, key: &Value<'_>) -> Value<'v> {
        match (self, key) {
            (Value::Array(items), _) => {
                let position = key.as_number().filter(|n| n.fract() == 0.0 && *n >= 1.0);
                // Saturating float-to-int casts make huge positions simply out of range.
                let item = position.and_then(|n| items.get((n as usize).saturating_sub(1)));
                Value::from_option(item)
            }
            (Value::Object(_), Value::Str(name)) => self.field(name),
            (Value::Object(_), _) if key.as_number().is_some() => {
                let mut name = String::new();
                key.write(&mut name, Escape::Raw);
                self.field(&name)
            }
            _ => Value::Nil,
        }
    }

    /// Writes the value as template output: nil, arrays, objects and non-finite numbers
    /// produce nothing; integral numbers have no fractional part.
    pub fn write(&self, out: &mut String, escape: Escape) {
        match self {
            Value::Nil | Value::Array(_) | Value::Object(_) => {}
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Str(s) => write_escaped(out, s, escape),
            Value::Num(n) => write_number(out, *n, escape),
            Value::JsonNum(n) if n.is_f64() => write_number(out, n.as_f64().unwrap_or(0.0), escape),
            Value::JsonNum(n) => {
                // Integers are digits and an optional sign: nothing to escape.
                let _ = write!(out, "{n}");
            }
        }
    }

    /// Applies an arithmetic or comparison operator.
    pub fn binary(&self, op: BinOp, rhs: &Value<'_>) -> Value<'v> {
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => self.arithmetic(op, rhs),
            _ => Value::Bool(self.compare(op, rhs)),
        }
    }

    /// Arithmetic on numbers (numeric strings included); anything else, or a non-finite
    /// result such as division by zero, yields nil.
    fn arithmetic(&self, op: BinOp, rhs: &Value<'_>) -> Value<'v> {
        let (Some(a), Some(b)) = (self.as_number(), rhs.as_number()) else {
            return Value::Nil;
        };
        let result = match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            _ => return Value::Nil,
        };
        if result.is_finite() {
            Value::Num(result)
        } else {
            Value::Nil
        }
    }

    /// Comparison operators; values that cannot be ordered compare false (and unequal).
    fn compare(&self, op: BinOp, rhs: &Value<'_>) -> bool {
        let ordering = self.ordering(rhs);
        match op {
            BinOp::Eq => ordering == Some(Ordering::Equal),
            BinOp::Ne => ordering != Some(Ordering::Equal),
            BinOp::Lt => ordering == Some(Ordering::Less),
            BinOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            BinOp::Gt => ordering == Some(Ordering::Greater),
            BinOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
            _ => false,
        }
    }

    /// Strings order by bytes, numbers numerically (a numeric string against a number counts
    /// as a number); arrays and objects are only equal to themselves.
    fn ordering(&self, rhs: &Value<'_>) -> Option<Ordering> {
        match (self, rhs) {
            (Value::Nil, Value::Nil) => Some(Ordering::Equal),
            (Value::Bool(a), Value::Bool(b)) => (a == b).then_some(Ordering::Equal),
            (Value::Str(a), Value::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (Value::Array(a), Value::Array(b)) => std::ptr::eq(*a, *b).then_some(Ordering::Equal),
            (Value::Object(a), Value::Object(b)) => std::ptr::eq(*a, *b).then_some(Ordering::Equal),
            _ if self.is_numeric() || rhs.is_numeric() => {
                self.as_number()?.partial_cmp(&rhs.as_number()?)
            }
            _ => None,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Value::Num(_) | Value::JsonNum(_))
    }
}

fn write_number(out: &mut String, n: f64, escape: Escape) {
    if !n.is_finite() {
        return;
    }
    // Rounded to 14 significant digits, as Lua prints numbers, so arithmetic shows `3.3`, not
    // the binary fraction's `3.3000000000000003`. Adding 0.0 turns -0 into 0.
    let n = format!("{n:.13e}").parse::<f64>().unwrap_or(n) + 0.0;
    let mut writer = EscapingWriter { out, escape };
    // Display for f64 already omits ".0" on integral values and never uses exponents.
    let _ = write!(writer, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(value: &Value<'_>) -> String {
        let mut out = String::new();
        value.write(&mut out, Escape::Raw);
        out
    }

    #[test]
    fn numbers_print_to_14_significant_digits_as_in_lua() {
        for (n, shown) in [
            (1.1 * 3.0, "3.3"),
            (0.1 + 0.2, "0.3"),
            (0.07 * 100.0, "7"),
            (5.0, "5"),
            (-0.0, "0"),
            (2.5e-3, "0.0025"),
            (123456789.125, "123456789.125"),
        ] {
            assert_eq!(rendered(&Value::Num(n)), shown, "{n}");
        }
    }

    #[test]
    fn truthiness_and_emptiness() {
        assert!(!Value::Nil.truthy() && !Value::Bool(false).truthy());
        assert!(Value::Str("".into()).truthy() && Value::Num(0.0).truthy());
        let data = json!([[], {}, "", 0]);
        let items: Vec<Value<'_>> = data
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::from_json)
            .collect();
        let empties: Vec<bool> = items.iter().map(Value::is_empty).collect();
        assert_eq!(empties, [true, true, true, false]);
    }

    #[test]
    fn renders_numbers_without_noise() {
        let data = json!([1.0, 2.5, -7, 18446744073709551615u64]);
        let out: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| rendered(&Value::from_json(j)))
            .collect();
        assert_eq!(out, ["1", "2.5", "-7", "18446744073709551615"]);
        assert_eq!(rendered(&Value::Num(-0.0)), "0");
        assert_eq!(rendered(&Value::Num(f64::NAN)), "");
        assert_eq!(rendered(&Value::Num(1e21)), "1000000000000000000000");
    }

    #[test]
    fn indexes_arrays_from_one_and_objects_by_key() {
        let data = json!({"list": ["a", "b"], "obj": {"2": "two", "k": "v"}});
        let list = Value::from_json(&data["list"]);
        let obj = Value::from_json(&data["obj"]);
        assert_eq!(rendered(&list.index(&Value::Num(1.0))), "a");
        assert_eq!(rendered(&list.index(&Value::Str("2".into()))), "b");
        for bad in [0.0, 3.0, -1.0, 1.5, f64::INFINITY, 1e300] {
            assert!(matches!(list.index(&Value::Num(bad)), Value::Nil), "{bad}");
        }
        assert_eq!(rendered(&obj.index(&Value::Num(2.0))), "two");
        assert_eq!(rendered(&obj.index(&Value::Str("k".into()))), "v");
        assert!(matches!(
            Value::Str("abc".into()).index(&Value::Num(1.0)),
            Value::Nil
        ));
    }

    #[test]
    fn arithmetic_yields_nil_instead_of_failing() {
        let two = Value::Num(2.0);
        assert!(matches!(
            two.arithmetic(BinOp::Div, &Value::Num(0.0)),
            Value::Nil
        ));
        assert!(matches!(
            two.arithmetic(BinOp::Add, &Value::Bool(true)),
            Value::Nil
        ));
        assert!(matches!(
            two.arithmetic(BinOp::Mul, &Value::Str(" 3 ".into())),
            Value::Num(6.0)
        ));
        assert!(matches!(
            Value::Num(f64::MAX).arithmetic(BinOp::Mul, &two),
            Value::Nil
        ));
    }

    #[test]
    fn compares_like_values_only() {
        let a = Value::Str("a".into());
        let b = Value::Str("b".into());
        assert!(a.compare(BinOp::Lt, &b) && b.compare(BinOp::Ge, &a));
        assert!(Value::Nil.compare(BinOp::Eq, &Value::Nil));
        assert!(Value::Nil.compare(BinOp::Ne, &Value::Bool(false)));
        assert!(!Value::Bool(true).compare(BinOp::Lt, &Value::Bool(false)));
        assert!(!a.compare(BinOp::Lt, &Value::Num(1.0)) && !a.compare(BinOp::Gt, &Value::Num(1.0)));
        let data = json!([[1], [1]]);
        let (x, y) = (Value::from_json(&data[0]), Value::from_json(&data[1]));
        assert!(x.compare(BinOp::Eq, &x.clone()) && x.compare(BinOp::Ne, &y));
    }

    #[test]
    fn length_counts_elements_and_characters() {
        assert!(matches!(Value::Str("héllo".into()).length(), Value::Num(n) if n == 5.0));
        assert!(matches!(Value::Bool(true).length(), Value::Nil));
    }
}
