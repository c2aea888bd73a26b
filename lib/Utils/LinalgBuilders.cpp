//===- LinalgBuilders.cpp - Builders for the linalg the lowerings emit ----===//

#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::buildEmpty(OpBuilder &b, Location loc,
                            ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

Value mlir::moe::buildFilled(OpBuilder &b, Location loc,
                             ArrayRef<OpFoldResult> sizes, Value value) {
  Value empty = buildEmpty(b, loc, sizes, value.getType());
  return linalg::FillOp::create(b, loc, value, empty).getResult(0);
}

Value mlir::moe::buildConstant(OpBuilder &b, Location loc, Type type,
                               double value) {
  if (isa<FloatType>(type))
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
  return arith::ConstantOp::create(
      b, loc, b.getIntegerAttr(type, static_cast<int64_t>(value)));
}

Value mlir::moe::buildZeros(OpBuilder &b, Location loc,
                            ArrayRef<OpFoldResult> sizes, Type elementType) {
  return buildFilled(b, loc, sizes, buildConstant(b, loc, elementType, 0));
}

Value mlir::moe::buildGeneric(OpBuilder &b, Location loc, Value init,
                              ValueRange inputs, ArrayRef<AffineMap> maps,
                              ArrayRef<utils::IteratorType> iterators,
                              BodyBuilder body) {
  auto generic = linalg::GenericOp::create(
      b, loc, init.getType(), inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, body(nb, nloc, args));
      });
  return generic.getResult(0);
}

Value mlir::moe::buildMap(OpBuilder &b, Location loc, ValueRange inputs,
                          BodyBuilder body, Type resultElementType) {
  Value first = inputs.front();
  auto type = cast<RankedTensorType>(first.getType());
  if (!resultElementType)
    resultElementType = type.getElementType();
  Value init = buildEmpty(b, loc, tensor::getMixedSizes(b, loc, first),
                          resultElementType);
  AffineMap identity =
      AffineMap::getMultiDimIdentityMap(type.getRank(), b.getContext());
  SmallVector<AffineMap> maps(inputs.size() + 1, identity);
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  return buildGeneric(b, loc, init, inputs, maps, iterators,
                      [&](OpBuilder &nb, Location nloc, ValueRange args) {
                        return body(nb, nloc, args.drop_back());
                      });
}

Value mlir::moe::buildMatmulTransposedB(OpBuilder &b, Location loc, Value a,
                                        Value w) {
  MLIRContext *ctx = b.getContext();
  Type elementType = cast<RankedTensorType>(a.getType()).getElementType();
  SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, loc, a, 0),
                                     tensor::getMixedSize(b, loc, w, 0)};
  Value init = buildZeros(b, loc, sizes, elementType);
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {m, k}, ctx),
                                 AffineMap::get(3, 0, {n, k}, ctx),
                                 AffineMap::get(3, 0, {m, n}, ctx)};
  SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                utils::IteratorType::parallel,
                                                utils::IteratorType::reduction};
  return buildContraction(b, loc, a, w, init, maps, iterators);
}

Value mlir::moe::buildMulAdd(OpBuilder &b, Location loc, ValueRange args) {
  Value product = arith::MulFOp::create(b, loc, args[0], args[1]);
  return arith::AddFOp::create(b, loc, args[2], product);
}

Value mlir::moe::buildContraction(OpBuilder &b, Location loc, Value a,
                                  Value bOperand, Value init,
                                  ArrayRef<AffineMap> maps,
                                  ArrayRef<utils::IteratorType> iterators) {
  return buildGeneric(b, loc, init, ValueRange{a, bOperand}, maps, iterators,
                      buildMulAdd);
}

/// Maps of a last-dimension row operation on a rank-`rank` tensor: the
/// whole tensor and its rows (every dimension but the last).
static std::pair<AffineMap, AffineMap> rowMaps(MLIRContext *ctx,
                                               unsigned rank) {
  AffineMap all = AffineMap::getMultiDimIdentityMap(rank, ctx);
  return {all, all.getMajorSubMap(rank - 1)};
}

Value mlir::moe::buildRowReduce(
    OpBuilder &b, Location loc, Value x, Value init,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  unsigned rank = cast<RankedTensorType>(x.getType()).getRank();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  sizes.pop_back();
  Value out = buildFilled(b, loc, sizes, init);
  auto [all, rows] = rowMaps(b.getContext(), rank);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  iterators.back() = utils::IteratorType::reduction;
  return buildGeneric(b, loc, out, ValueRange{x}, {all, rows}, iterators,
                      [&](OpBuilder &nb, Location nloc, ValueRange args) {
                        return combine(nb, nloc, args[1], args[0]);
                      });
}

Value mlir::moe::buildRowBroadcast(
    OpBuilder &b, Location loc, Value x, Value v,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  auto type = cast<RankedTensorType>(x.getType());
  Value init = buildEmpty(b, loc, tensor::getMixedSizes(b, loc, x),
                          type.getElementType());
  auto [all, rows] = rowMaps(b.getContext(), type.getRank());
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  return buildGeneric(b, loc, init, ValueRange{x, v}, {all, rows, all},
                      iterators,
                      [&](OpBuilder &nb, Location nloc, ValueRange args) {
                        return combine(nb, nloc, args[0], args[1]);
                      });
}

Value mlir::moe::buildSoftmaxRows(OpBuilder &b, Location loc, Value x) {
  Type elementType = cast<RankedTensorType>(x.getType()).getElementType();
  auto floatType = cast<FloatType>(elementType);
  Value lowest = arith::ConstantOp::create(
      b, loc,
      b.getFloatAttr(floatType, APFloat::getInf(floatType.getFloatSemantics(),
                                                /*Negative=*/true)));
  Value max = buildRowReduce(
      b, loc, x, lowest, [](OpBuilder &nb, Location nloc, Value acc, Value v) {
        return arith::MaximumFOp::create(nb, nloc, acc, v).getResult();
      });
  Value exp = buildRowBroadcast(
      b, loc, x, max, [](OpBuilder &nb, Location nloc, Value v, Value m) {
        Value shifted = arith::SubFOp::create(nb, nloc, v, m);
        return math::ExpOp::create(nb, nloc, shifted).getResult();
      });
  Value sum = buildRowReduce(
      b, loc, exp, buildConstant(b, loc, elementType, 0),
      [](OpBuilder &nb, Location nloc, Value acc, Value v) {
        return arith::AddFOp::create(nb, nloc, acc, v).getResult();
      });
  return buildRowBroadcast(
      b, loc, exp, sum, [](OpBuilder &nb, Location nloc, Value v, Value s) {
        return arith::DivFOp::create(nb, nloc, v, s).getResult();
      });
}

Value mlir::moe::buildSigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = buildConstant(b, loc, x.getType(), 1.0);
  Value exp = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, exp));
}

Value mlir::moe::buildSilu(OpBuilder &b, Location loc, Value x) {
  Value one = buildConstant(b, loc, x.getType(), 1.0);
  Value exp = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, x,
                               arith::AddFOp::create(b, loc, one, exp));
}

Value mlir::moe::buildGelu(OpBuilder &b, Location loc, Value x) {
  Type type = x.getType();
  Value half = buildConstant(b, loc, type, 0.5);
  Value one = buildConstant(b, loc, type, 1.0);
  Value invSqrt2 = buildConstant(b, loc, type, 0.70710678118654752440);
  Value erf =
      math::ErfOp::create(b, loc, arith::MulFOp::create(b, loc, x, invSqrt2));
  Value scaled = arith::MulFOp::create(b, loc, half, x);
  return arith::MulFOp::create(b, loc, scaled,
                               arith::AddFOp::create(b, loc, one, erf));
}

Value mlir::moe::buildRelu(OpBuilder &b, Location loc, Value x) {
  return arith::MaximumFOp::create(b, loc, x,
                                   buildConstant(b, loc, x.getType(), 0.0));
}
