// Internal to the scenario reader (core/scenario*.cpp): one reader per section of the scenario
// JSON. Each reads its keys into the spec with the struct's defaults kept for absent keys, and
// records the first error in the shared JsonReader. Checks that span sections live in scenario.cpp.
#pragma once

#include <string>
#include <vector>

#include "core/json_path.h"
#include "core/scenario.h"

namespace crowdtrain::scenario_detail {

// Reads `key` as a distribution (parse_dist) when present.
void read_dist(JsonReader& r, const std::string& key, DistSpec& out, bool positive);

// The sections, each given the reader of its own object ("peers", "network", ...). read_peers
// leaves a class's missing upload/download at network's value when the class sets the other one.
void read_peers(JsonReader& r, PeersSpec& out, std::vector<bool>& class_sets_upload,
                std::vector<bool>& class_sets_download);
void read_network(JsonReader& r, NetworkSpec& out);
void read_churn(JsonReader& r, ChurnSpec& out);
void read_faults(JsonReader& r, std::vector<FaultSpec>& out);  // r: the root reader, key "faults"
void read_compute(JsonReader& r, ComputeSpec& out);
void read_workload(JsonReader& r, WorkloadSpec& out);
void read_output(JsonReader& r, OutputSpec& out);

}  // namespace crowdtrain::scenario_detail
