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
void read_dht_workload(JsonReader& r, DhtWorkloadSpec& out);              // scenario_parse_dht.cpp
void read_averaging_workload(JsonReader& r, AveragingWorkloadSpec& out);  // ..._averaging.cpp
// load_balance, bandwidth_mbps, client_below_mbps (averaging and training; ..._averaging.cpp).
void read_load_balance(JsonReader& r, LoadBalanceSpec& out);
// The round's timing fits (averaging and training): the gossip window inside a round, matchmaking
// and all-reduce time-outs plus 1 s inside a round; fails at the key's path otherwise.
void check_round_fits(JsonReader& r, double gossip_window_s, double round_interval_s,
                      double matchmaking_timeout_s, double allreduce_timeout_s);
void read_training_workload(JsonReader& r, TrainingWorkloadSpec& out);  // ..._training.cpp
void read_output(JsonReader& r, OutputSpec& out);

}  // namespace crowdtrain::scenario_detail
