//===- PlanFacts.cpp - what a parallel plan means, in one place -----------===//

#include "moe/Dialect/MoE/IR/PlanFacts.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mlir::moe;

std::optional<std::string> mlir::moe::checkPlanDegrees(const PlanDegrees &d) {
  const char *keys[] = {"dp", "tp", "ep", "etp", "pp"};
  int64_t values[] = {d.dp, d.tp, d.ep, d.etp, d.pp};
  for (int i = 0; i < 5; ++i)
    if (values[i] < 1)
      return llvm::formatv("#moe.plan degree {0} = {1} must be >= 1", keys[i],
                           values[i])
          .str();
  int64_t stage = d.dp * d.tp;
  if (stage % d.ep != 0)
    return llvm::formatv("#moe.plan ep = {0} must divide dp * tp = {1} "
                         "(expert parallel ranks are carved out of the data "
                         "and tensor parallel ranks)",
                         d.ep, stage)
        .str();
  if (d.tp % d.etp != 0)
    return llvm::formatv("#moe.plan etp = {0} must divide tp = {1} (expert "
                         "tensor parallel ranks are carved out of the tensor "
                         "parallel group)",
                         d.etp, d.tp)
        .str();
  if (stage % (d.ep * d.etp) != 0)
    return llvm::formatv("#moe.plan ep * etp = {0} must divide dp * tp = {1} "
                         "(an expert's etp slices live on ranks of one expert "
                         "parallel position)",
                         d.ep * d.etp, stage)
        .str();
  return std::nullopt;
}

std::optional<std::string>
mlir::moe::checkPlanFitsModel(const PlanModelFacts &m, const PlanDegrees &d,
                              int64_t microbatches, size_t dispatchEntries,
                              size_t dedupEntries) {
  if (std::optional<std::string> why = checkPlanDegrees(d))
    return why;
  if (m.layers && m.layerGroup > 1 && (m.layers / m.layerGroup) % d.pp != 0)
    return llvm::formatv("plan pp = {0} does not divide the {1} layer pairs "
                         "of the model (a stage keeps a dense layer and the "
                         "MoE layer that reads its shortcut together)",
                         d.pp, m.layers / m.layerGroup)
        .str();
  if (m.layers && m.layers % d.pp != 0)
    return llvm::formatv("plan pp = {0} does not divide the {1} layers of the "
                         "model (each pipeline stage runs the same number of "
                         "layers)",
                         d.pp, m.layers)
        .str();
  if (d.pp > 1 && (dispatchEntries > 1 || dedupEntries > 1))
    return std::string("per-layer dispatch or dedup lists need pp = 1 (every "
                       "pipeline stage runs the same program); give one "
                       "value for all layers");
  if (m.kvHeads && m.kvHeads % d.tp != 0)
    return llvm::formatv("plan tp = {0} does not divide num_key_value_heads "
                         "= {1} (each rank needs whole key/value heads)",
                         d.tp, m.kvHeads)
        .str();
  if ((m.expertFfn && m.expertFfn % d.etp != 0) ||
      (m.sharedFfn && m.sharedFfn % d.etp != 0))
    return llvm::formatv(
               "plan etp = {0} does not divide the expert FFN width ({1}{2})",
               d.etp, m.expertFfn,
               m.sharedFfn ? llvm::formatv(" and shared {0}", m.sharedFfn).str()
                           : std::string())
        .str();
  if (m.denseFfn && m.denseFfn % d.tp != 0)
    return llvm::formatv("plan tp = {0} does not divide the dense MLP width "
                         "({1})",
                         d.tp, m.denseFfn)
        .str();
  if (m.batch && m.batch % d.dp != 0)
    return llvm::formatv("plan dp = {0} does not divide the batch ({1} "
                         "sequences; moe-compile --batch)",
                         d.dp, m.batch)
        .str();
  for (auto [key, size] :
       {std::make_pair("dispatch strategies", dispatchEntries),
        std::make_pair("dedup flags", dedupEntries)})
    if (int64_t moe = m.moeLayers ? m.moeLayers : m.layers;
        moe && size > 1 && static_cast<int64_t>(size) != moe)
      return llvm::formatv("plan lists {0} {1} but the model has {2} {3}", size,
                           key, moe, m.moeLayers ? "MoE layers" : "layers")
          .str();
  if (m.experts && m.experts % d.ep != 0)
    return llvm::formatv("plan ep = {0} does not divide the {1} experts of the "
                         "model",
                         d.ep, m.experts)
        .str();
  if (microbatches == 0)
    return std::nullopt;
  if (microbatches < 0)
    return llvm::formatv("--microbatches must be >= 1, got {0}", microbatches)
        .str();
  if (d.pp == 1 && microbatches > 1)
    return llvm::formatv("--microbatches {0} needs a pipeline (pp > 1)",
                         microbatches)
        .str();
  if (m.batch && (m.batch / d.dp) % microbatches != 0)
    return llvm::formatv("--microbatches {0} does not divide the {1} "
                         "sequences of a data-parallel rank",
                         microbatches, m.batch / d.dp)
        .str();
  if (microbatches > 1 && m.capacityLimited)
    return llvm::formatv(
               "--microbatches {0}: the model's experts have a capacity "
               "(capacity_factor), and routing microbatches separately would "
               "drop other tokens than routing the batch; use "
               "--microbatches 1",
               microbatches)
        .str();
  return std::nullopt;
}

RankCoords mlir::moe::getRankCoords(const PlanDegrees &d, int64_t rank) {
  int64_t stage = d.dp * d.tp;
  int64_t local = rank % stage;
  RankCoords c;
  c.pp = rank / stage;
  c.tp = local % d.tp;
  c.dp = local / d.tp;
  c.ep = (local / d.etp) % d.ep;
  c.epGroup = (local / (d.ep * d.etp)) * d.etp + local % d.etp;
  c.etpGroup = c.tp / d.etp;
  c.etp = c.tp % d.etp;
  return c;
}

std::array<int64_t, kNumGroupKinds>
mlir::moe::getGroupColors(const PlanDegrees &d, int64_t rank) {
  RankCoords c = getRankCoords(d, rank);
  int64_t stage = d.dp * d.tp;
  return {0,
          c.pp * d.tp + c.tp,
          c.pp * d.dp + c.dp,
          c.pp * (stage / d.ep) + c.epGroup,
          (c.pp * d.dp + c.dp) * (d.tp / d.etp) + c.etpGroup,
          c.dp * d.tp + c.tp};
}

int64_t mlir::moe::getGroupRank(const PlanDegrees &d, int64_t rank,
                                GroupKind kind) {
  RankCoords c = getRankCoords(d, rank);
  switch (kind) {
  case GroupKind::World:
    return rank;
  case GroupKind::Dp:
    return c.dp;
  case GroupKind::Tp:
    return c.tp;
  case GroupKind::Ep:
    return c.ep;
  case GroupKind::Etp:
    return c.etp;
  case GroupKind::Pp:
    return c.pp;
  }
  return 0;
}

llvm::SmallVector<int64_t> mlir::moe::getDenseGridShape(const PlanDegrees &d) {
  return {d.pp, d.dp, d.tp};
}

llvm::SmallVector<int64_t> mlir::moe::getExpertGridShape(const PlanDegrees &d) {
  return {d.pp, d.dp * d.tp / (d.ep * d.etp), d.ep, d.etp};
}
