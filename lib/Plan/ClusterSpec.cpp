//===- ClusterSpec.cpp - the machine a plan is for ------------------------===//
//
// JSON in the units people quote (GiB, TFLOP/s, GB/s, microseconds), stored in
// SI units. Every field is checked: missing, wrong type, non-positive, or
// unknown keys are errors naming the field.
//
//===----------------------------------------------------------------------===//

#include "moe/Plan/Planner.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdlib>

using namespace mlir::moe::plan;
using llvm::json::Object;
using llvm::json::Value;

namespace {

llvm::Error fieldError(const llvm::Twine &field, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "cluster spec: '" + field + "' " + what);
}

/// Reads the keys of `obj` into the expected set, rejecting others.
class Fields {
public:
  Fields(const Object &obj, std::string prefix)
      : obj(obj), prefix(std::move(prefix)) {}

  llvm::Expected<double> positive(llvm::StringRef key) {
    seen.push_back(key);
    const Value *v = obj.get(key);
    if (!v)
      return fieldError(prefix + key, "is missing");
    std::optional<double> d = v->getAsNumber();
    if (!d)
      return fieldError(prefix + key, "must be a number");
    if (!(*d > 0))
      return fieldError(prefix + key, "must be > 0");
    return *d;
  }
  llvm::Expected<int64_t> count(llvm::StringRef key) {
    seen.push_back(key);
    const Value *v = obj.get(key);
    if (!v)
      return fieldError(prefix + key, "is missing");
    std::optional<int64_t> i = v->getAsInteger();
    if (!i || *i < 1)
      return fieldError(prefix + key, "must be an integer >= 1");
    return *i;
  }
  llvm::Expected<const Object *> object(llvm::StringRef key) {
    seen.push_back(key);
    const Value *v = obj.get(key);
    if (!v)
      return fieldError(prefix + key, "is missing");
    const Object *o = v->getAsObject();
    if (!o)
      return fieldError(prefix + key, "must be an object");
    return o;
  }
  std::optional<std::string> string(llvm::StringRef key) {
    seen.push_back(key);
    if (const Value *v = obj.get(key))
      if (auto s = v->getAsString())
        return s->str();
    return std::nullopt;
  }
  llvm::Error rejectOthers() {
    for (const auto &kv : obj)
      if (!llvm::is_contained(seen, llvm::StringRef(kv.first)))
        return fieldError(prefix + kv.first.str(),
                          "is not a cluster spec field (docs/Planner.md)");
    return llvm::Error::success();
  }

private:
  const Object &obj;
  std::string prefix;
  llvm::SmallVector<llvm::StringRef> seen;
};

llvm::Expected<Link> parseLink(Fields &parent, llvm::StringRef key) {
  auto obj = parent.object(key);
  if (!obj)
    return obj.takeError();
  Fields f(**obj, (key + ".").str());
  Link link;
  auto bw = f.positive("bandwidth_gbs");
  if (!bw)
    return bw.takeError();
  auto lat = f.positive("latency_us");
  if (!lat)
    return lat.takeError();
  if (llvm::Error e = f.rejectOthers())
    return std::move(e);
  link.bandwidth = *bw * 1e9;
  link.latency = *lat * 1e-6;
  return link;
}

// Approximate public figures; docs/Planner.md lists their sources.
constexpr llvm::StringLiteral kPresets[][2] = {
    {"h100x8", R"({"name": "h100x8", "nodes": 1, "devices_per_node": 8,
      "device": {"memory_gib": 80, "peak_tflops": {"f32": 67, "bf16": 989},
                 "memory_bandwidth_gbs": 3350},
      "intra_node": {"bandwidth_gbs": 450, "latency_us": 3},
      "inter_node": {"bandwidth_gbs": 50, "latency_us": 6},
      "host_device_bandwidth_gbs": 55})"},
    {"h100x8x4", R"({"name": "h100x8x4", "nodes": 4, "devices_per_node": 8,
      "device": {"memory_gib": 80, "peak_tflops": {"f32": 67, "bf16": 989},
                 "memory_bandwidth_gbs": 3350},
      "intra_node": {"bandwidth_gbs": 450, "latency_us": 3},
      "inter_node": {"bandwidth_gbs": 50, "latency_us": 6},
      "host_device_bandwidth_gbs": 55})"},
    {"a30x8", R"({"name": "a30x8", "nodes": 1, "devices_per_node": 8,
      "device": {"memory_gib": 24, "peak_tflops": {"f32": 10.3, "bf16": 165},
                 "memory_bandwidth_gbs": 933},
      "intra_node": {"bandwidth_gbs": 12, "latency_us": 10},
      "inter_node": {"bandwidth_gbs": 12, "latency_us": 10},
      "host_device_bandwidth_gbs": 25})"},
    {"v100x128", R"({"name": "v100x128", "nodes": 32, "devices_per_node": 4,
      "device": {"memory_gib": 32, "peak_tflops": {"f32": 15.7, "bf16": 125},
                 "memory_bandwidth_gbs": 900},
      "intra_node": {"bandwidth_gbs": 75, "latency_us": 5},
      "inter_node": {"bandwidth_gbs": 6.25, "latency_us": 8},
      "host_device_bandwidth_gbs": 16})"},
};

} // namespace

llvm::Expected<ClusterSpec>
mlir::moe::plan::parseClusterSpec(llvm::StringRef text) {
  llvm::Expected<Value> parsed = llvm::json::parse(text);
  if (!parsed)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cluster spec: invalid JSON: " +
                                       llvm::toString(parsed.takeError()));
  const Object *root = parsed->getAsObject();
  if (!root)
    return fieldError("(top level)", "must be a JSON object");
  Fields f(*root, "");
  ClusterSpec spec;
  spec.name = f.string("name").value_or("unnamed");
  auto nodes = f.count("nodes");
  if (!nodes)
    return nodes.takeError();
  auto perNode = f.count("devices_per_node");
  if (!perNode)
    return perNode.takeError();
  spec.nodes = *nodes;
  spec.devicesPerNode = *perNode;

  auto device = f.object("device");
  if (!device)
    return device.takeError();
  Fields d(**device, "device.");
  auto memory = d.positive("memory_gib");
  if (!memory)
    return memory.takeError();
  auto peak = d.object("peak_tflops");
  if (!peak)
    return peak.takeError();
  Fields p(**peak, "device.peak_tflops.");
  auto f32 = p.positive("f32");
  if (!f32)
    return f32.takeError();
  auto bf16 = p.positive("bf16");
  if (!bf16)
    return bf16.takeError();
  if (llvm::Error e = p.rejectOthers())
    return std::move(e);
  auto hbm = d.positive("memory_bandwidth_gbs");
  if (!hbm)
    return hbm.takeError();
  if (llvm::Error e = d.rejectOthers())
    return std::move(e);
  spec.deviceMemory = *memory * 1024.0 * 1024.0 * 1024.0;
  spec.flopsF32 = *f32 * 1e12;
  spec.flopsBf16 = *bf16 * 1e12;
  spec.memoryBandwidth = *hbm * 1e9;

  auto intra = parseLink(f, "intra_node");
  if (!intra)
    return intra.takeError();
  auto inter = parseLink(f, "inter_node");
  if (!inter)
    return inter.takeError();
  spec.intraNode = *intra;
  spec.interNode = *inter;
  auto host = f.positive("host_device_bandwidth_gbs");
  if (!host)
    return host.takeError();
  spec.hostDeviceBandwidth = *host * 1e9;
  if (llvm::Error e = f.rejectOthers())
    return std::move(e);
  return spec;
}

llvm::ArrayRef<llvm::StringRef> mlir::moe::plan::getClusterPresetNames() {
  static const llvm::SmallVector<llvm::StringRef> names = [] {
    llvm::SmallVector<llvm::StringRef> n;
    for (const auto &preset : kPresets)
      n.push_back(preset[0]);
    return n;
  }();
  return names;
}

llvm::Expected<ClusterSpec>
mlir::moe::plan::getClusterPreset(llvm::StringRef name) {
  for (const auto &preset : kPresets)
    if (name == preset[0])
      return parseClusterSpec(preset[1]);
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "unknown cluster preset '" + name +
          "'; presets: " + llvm::join(getClusterPresetNames(), ", ") +
          ", local (measured by moert-calibrate), or the path of a JSON "
          "file (docs/Planner.md)");
}

llvm::Expected<ClusterSpec>
mlir::moe::plan::loadCluster(llvm::StringRef presetOrPath) {
  // `local` is measured, not built in: moert-calibrate writes it.
  std::string localPath;
  if (presetOrPath == "local") {
    const char *env = std::getenv("MOE_CLUSTER_LOCAL");
    localPath = env && *env ? env : "local.json";
    if (!llvm::sys::fs::exists(localPath))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "the 'local' cluster is measured on this machine: run `mpiexec -n "
          "<ranks> build/bin/moert-calibrate local.json` first (or point "
          "MOE_CLUSTER_LOCAL at its output); '" +
              localPath + "' does not exist");
    presetOrPath = localPath;
  }
  if (!presetOrPath.ends_with(".json"))
    return getClusterPreset(presetOrPath);
  auto buffer = llvm::MemoryBuffer::getFile(presetOrPath);
  if (!buffer)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot read cluster spec '" + presetOrPath +
                                       "': " + buffer.getError().message());
  auto spec = parseClusterSpec((*buffer)->getBuffer());
  if (!spec)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   presetOrPath + ": " +
                                       llvm::toString(spec.takeError()));
  return spec;
}

void mlir::moe::plan::printClusterSpec(const ClusterSpec &s,
                                       llvm::raw_ostream &os) {
  os << llvm::formatv(
      "{{\"name\": \"{0}\", \"nodes\": {1}, \"devices_per_node\": {2}, "
      "\"device\": {{\"memory_gib\": {3}, \"peak_tflops\": {{\"f32\": {4}, "
      "\"bf16\": {5}}, \"memory_bandwidth_gbs\": {6}}, \"intra_node\": "
      "{{\"bandwidth_gbs\": {7}, \"latency_us\": {8}}, \"inter_node\": "
      "{{\"bandwidth_gbs\": {9}, \"latency_us\": {10}}, "
      "\"host_device_bandwidth_gbs\": {11}}\n",
      s.name, s.nodes, s.devicesPerNode,
      s.deviceMemory / (1024.0 * 1024.0 * 1024.0), s.flopsF32 / 1e12,
      s.flopsBf16 / 1e12, s.memoryBandwidth / 1e9, s.intraNode.bandwidth / 1e9,
      s.intraNode.latency * 1e6, s.interNode.bandwidth / 1e9,
      s.interNode.latency * 1e6, s.hostDeviceBandwidth / 1e9);
}
