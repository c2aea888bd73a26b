//===- LinalgBuilders.h - Builders for the linalg the lowerings emit -*- C++
//-*-===//
//
// Small helpers shared by the moe lowerings and the model importer: empty and
// zero tensors, elementwise maps, row reductions, and the contraction
// `x · Wᵀ` of a weight in nn.Linear layout. All work on ranked tensors with
// static or dynamic shapes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_UTILS_LINALGBUILDERS_H
#define MOE_UTILS_LINALGBUILDERS_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {

using BodyBuilder = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// A tensor.empty of `sizes` and `elementType`.
Value buildEmpty(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                 Type elementType);
/// A tensor of `sizes` filled with `value` (a scalar of the element type).
Value buildFilled(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Value value);
/// A tensor of `sizes` filled with zero.
Value buildZeros(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                 Type elementType);
/// A scalar constant of a float or integer type.
Value buildConstant(OpBuilder &b, Location loc, Type type, double value);

/// out = body(inputs...) elementwise; all inputs have the shape of inputs[0];
/// the result has that shape and `resultElementType` (default: that of
/// inputs[0]). `body` gets the scalars and returns the result scalar.
Value buildMap(OpBuilder &b, Location loc, ValueRange inputs, BodyBuilder body,
               Type resultElementType = {});

/// A linalg.generic with one output initialized by `init`; `body` gets the
/// input scalars followed by the output scalar and returns the new output.
Value buildGeneric(OpBuilder &b, Location loc, Value init, ValueRange inputs,
                   ArrayRef<AffineMap> maps,
                   ArrayRef<utils::IteratorType> iterators, BodyBuilder body);

/// The body of a contraction: args = (a, b, acc) -> acc + a * b.
Value buildMulAdd(OpBuilder &b, Location loc, ValueRange args);

/// A contraction `out = init + sum a * b` over the iterators marked
/// `reduction`, with the indexing maps of a, b and out.
Value buildContraction(OpBuilder &b, Location loc, Value a, Value bOperand,
                       Value init, ArrayRef<AffineMap> maps,
                       ArrayRef<utils::IteratorType> iterators);

/// out[m, n] = sum_k a[m, k] * w[n, k]: `a` times the transpose of a weight in
/// nn.Linear layout [out, in]. The result has the element type of `a`.
Value buildMatmulTransposedB(OpBuilder &b, Location loc, Value a, Value w);

/// Reduces the last dimension of a tensor of rank >= 2 (its rows are the
/// other dimensions): out[r] = fold(out[r], x[r, c]) starting from `init`
/// (a scalar).
Value buildRowReduce(
    OpBuilder &b, Location loc, Value x, Value init,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine);

/// x[r, c] op v[r] for x of rank >= 2 and v of one rank less (v broadcast
/// along the last dimension).
Value buildRowBroadcast(
    OpBuilder &b, Location loc, Value x, Value v,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine);

/// Numerically stable softmax over the last dimension of a tensor of rank
/// >= 2:
/// exp(x - max) / sum(exp(x - max)).
Value buildSoftmaxRows(OpBuilder &b, Location loc, Value x);

/// sigmoid(x) = 1 / (1 + exp(-x)) on a scalar.
Value buildSigmoid(OpBuilder &b, Location loc, Value x);
/// silu(x) = x * sigmoid(x) on a scalar, written as x / (1 + exp(-x)).
Value buildSilu(OpBuilder &b, Location loc, Value x);
/// gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2))) on a scalar (exact form).
Value buildGelu(OpBuilder &b, Location loc, Value x);
/// relu(x) = max(x, 0) on a scalar.
Value buildRelu(OpBuilder &b, Location loc, Value x);

} // namespace moe
} // namespace mlir

#endif // MOE_UTILS_LINALGBUILDERS_H
