//===- AffineUtils.h - reading indexing maps ---------------------*- C++
//-*-===//

#ifndef MOE_UTILS_AFFINEUTILS_H
#define MOE_UTILS_AFFINEUTILS_H

#include "mlir/IR/AffineExpr.h"

#include <optional>
#include <utility>

namespace mlir {
namespace moe {

/// The loop an indexing-map result reads and the divisor it reads it by:
/// `d` is (d, 1), `d floordiv c` with a constant c > 0 is (d, c) (how
/// grouped-query attention indexes kv heads); nothing for anything else.
inline std::optional<std::pair<unsigned, int64_t>>
matchDimOrFloorDiv(AffineExpr e) {
  if (auto dim = dyn_cast<AffineDimExpr>(e))
    return std::make_pair(dim.getPosition(), int64_t(1));
  auto bin = dyn_cast<AffineBinaryOpExpr>(e);
  if (!bin || bin.getKind() != AffineExprKind::FloorDiv)
    return std::nullopt;
  auto dim = dyn_cast<AffineDimExpr>(bin.getLHS());
  auto c = dyn_cast<AffineConstantExpr>(bin.getRHS());
  if (!dim || !c || c.getValue() <= 0)
    return std::nullopt;
  return std::make_pair(dim.getPosition(), c.getValue());
}

} // namespace moe
} // namespace mlir

#endif // MOE_UTILS_AFFINEUTILS_H
