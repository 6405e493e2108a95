// Writes the fuzz targets' seed corpora: valid messages of every kind each target reads, and a few
// scenarios with overrides, one file each under <out>/<target>/. libFuzzer mutates from these, so
// it reaches the protocol decoders at once instead of first having to discover the codec's magic
// numbers. Run by hand when a protocol changes (docs/reliability.md):
//   build/tests/fuzz_make_corpus tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/averaging/allreduce_wire.h"
#include "core/averaging/compression.h"
#include "core/averaging/matchmaking_wire.h"
#include "core/dht/protocol.h"
#include "core/message.h"
#include "core/moe/protocol.h"
#include "core/tensor_codec.h"
#include "core/train/local_trainer.h"
#include "core/train/models.h"
#include "core/train/state_transfer.h"

namespace ct = crowdtrain;

namespace {

std::string out_root;

void write(const std::string& target, const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string dir = out_root + "/" + target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/" + name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& target, const std::string& name, const std::string& text) {
  write(target, name, std::vector<uint8_t>(text.begin(), text.end()));
}

void dht_corpus() {
  using namespace ct::dht;
  const DhtId a = DhtId::from_key("a"), b = DhtId::from_key("b");
  write("dht", "ping_request", ct::encode(encode_ping_request(PingRequest{a, false})));
  write("dht", "ping_response", ct::encode(encode_ping_response(PingResponse{b})));
  StoreRequest store{a, false, false, {}};
  store.records.push_back(StoreRecord{b, false, "", "value", ct::Time(5'000'000'000)});
  store.records.push_back(StoreRecord{a, true, "sub", "entry", ct::Time(6'000'000'000)});
  write("dht", "store_request", ct::encode(encode_store_request(store)));
  write("dht", "store_response", ct::encode(encode_store_response(StoreResponse{b, {"", "full"}})));
  write("dht", "find_request", ct::encode(encode_find_request(FindRequest{a, true, {a, b}})));
  FindResponse find{b, {}};
  FindKeyResult plain;
  plain.value = DhtValue{};
  plain.value->plain = ValueEntry{"v", ct::Time(7'000'000'000)};
  plain.nearest.push_back(Contact{a, 3});
  FindKeyResult dict;
  dict.value = DhtValue{};
  dict.value->is_dictionary = true;
  dict.value->dictionary["k"] = ValueEntry{"w", ct::Time(8'000'000'000)};
  find.results = {plain, dict};
  write("dht", "find_response", ct::encode(encode_find_response(find, {a, b})));
}

void moe_corpus() {
  using namespace ct::moe;
  const ct::TensorData x = ct::to_tensor_data(torch::randn({2, 4}));
  write("moe", "forward_request",
        ct::encode(encode_forward_request(ForwardRequest{"ffn.0.1", Numerics::kReal, x})));
  write("moe", "forward_request_timing",
        ct::encode(encode_forward_request(ForwardRequest{"ffn.3", Numerics::kTiming, x})));
  write("moe", "forward_response",
        ct::encode(encode_forward_response(ForwardResponse{Numerics::kReal, x, 7})));
  write("moe", "backward_request",
        ct::encode(encode_backward_request(BackwardRequest{"ffn.0.1", Numerics::kReal, x, x, 7})));
  write("moe", "backward_response",
        ct::encode(encode_backward_response(BackwardResponse{Numerics::kReal, x})));
  write("moe", "state_request", ct::encode(encode_state_request(StateRequest{"ffn.2.2"})));
  write("moe", "state_response",
        ct::encode(encode_state_response(StateResponse{"ffn.2.2", "state-bytes", 12})));
}

void averaging_corpus() {
  const at::Tensor t = torch::randn({300});
  const ct::ChunkHeader h{42, 3, 1, 0};
  const std::pair<ct::Compression, const char*> codecs[] = {
      {ct::Compression::kNone, "none"},
      {ct::Compression::kFloat16, "fp16"},
      {ct::Compression::kScaledFloat16, "meanstd_fp16"},
      {ct::Compression::kUniform8Bit, "uniform8"},
      {ct::Compression::kQuantile8Bit, "quantile8"}};
  for (const auto& [codec, name] : codecs) {
    write("averaging", std::string("part_") + name,
          ct::encode(ct::make_chunk_message(ct::MsgType::kAvgPart, h, ct::compress(t, codec))));
  }
  write("averaging", "result",
        ct::encode(ct::make_chunk_message(ct::MsgType::kAvgResult, h,
                                          ct::compress(t, ct::Compression::kNone))));
  write("averaging", "refuse", ct::encode(ct::make_refuse_message(42, 3, "late")));
}

void matchmaking_corpus() {
  const ct::GroupMember node{7, 1.0, 2.5, ct::AveragingMode::kNode};
  write("matchmaking", "join_request",
        ct::encode(ct::encode_join_request(ct::MmJoinRequest{3, "avg.round", ct::Time(5), node})));
  write("matchmaking", "join_response_redirect",
        ct::encode(ct::encode_join_response(ct::MmJoinResponse{ct::MmJoinCode::kRedirect, 9})));
  write("matchmaking", "join_response_accepted",
        ct::encode(ct::encode_join_response(ct::MmJoinResponse{ct::MmJoinCode::kAccepted})));
  ct::AllReduceGroup group{
      0x1234,
      3,
      {node, {2, 0.5, 0.0, ct::AveragingMode::kClient}, {4, 0.0, 1.0, ct::AveragingMode::kAux}}};
  write("matchmaking", "begin", ct::encode(ct::encode_begin(ct::MmBegin{3, "avg.round", group})));
  write("matchmaking", "handover",
        ct::encode(ct::encode_handover(ct::MmHandover{3, "avg.round", 4})));
}

void codec_corpus() {
  ct::Message m;
  m.type = ct::MsgType::kAvgPart;
  m.fields.push_back(ct::Field{1, uint64_t{7}});
  m.fields.push_back(ct::Field{2, int64_t{-3}});
  m.fields.push_back(ct::Field{3, 2.5});
  m.fields.push_back(ct::Field{4, std::string("bytes")});
  m.fields.push_back(
      ct::Field{5, ct::to_tensor_data(torch::arange(6, torch::kFloat64).reshape({2, 3}))});
  m.fields.push_back(ct::Field{6, ct::Filler{24}});
  write("codec", "every_field_kind", ct::encode(m));
  ct::Message empty;
  empty.type = ct::MsgType::kAvgRefuse;
  write("codec", "no_fields", ct::encode(empty));
}

void scenario_corpus() {
  write_text("scenario", "probe", "\n{\"peers\": {\"count\": 10}, \"duration_s\": 5}");
  write_text("scenario", "set_fault",
             "faults=[{\"kind\": \"loss\", \"duration_s\": 5, \"loss_rate\": 0.3}]\n"
             "{\"peers\": {\"count\": 10}}");
  write_text("scenario", "dht",
             "workload.dht.keys=\"schedule\"\n"
             "{\"workload\": {\"kind\": \"dht\", \"dht\": {\"store_rate_hz\": 0.1}}}");
  write_text(
      "scenario", "moe",
      "workload.moe.grid.sizes=[4, 4]\n"
      "{\"peers\": {\"count\": 5}, \"workload\": {\"kind\": \"moe\", \"moe\": {\"servers\": 2, "
      "\"expert\": {\"kind\": \"ffn\", \"hidden\": 8}}}}");
  write_text("scenario", "averaging",
             "workload.averaging.method=\"gossip\"\n"
             "{\"peers\": {\"count\": 16}, \"workload\": {\"kind\": \"averaging\", \"averaging\": "
             "{\"grid_size\": 4, \"grid_dims\": 2}}, \"churn\": {\"model\": \"sessions\", "
             "\"session_s\": {\"dist\": \"weibull\", \"shape\": 0.6, \"median\": 600}}}");
}

}  // namespace

// Moshpit SGD state responses, after a first byte (bit 0: with the optimizer statistics): the
// fuzz target's joiner architecture (installs) and a bigger one (refused).
void state_corpus() {
  using namespace ct::train;
  for (int64_t hidden : {8, 12}) {
    torch::manual_seed(5);
    Dataset data(torch::randn({16, 6}), torch::randint(0, 3, {16}, torch::kInt64), 3);
    LocalTrainer server(
        make_model(ModelOptions().input_dim(6).hidden(hidden).depth(1).num_classes(3), 2),
        std::move(data),
        LocalTrainerOptions().optimizer(OptimizerKind::kSgd).lr(0.1).momentum(0.9).seed(2));
    server.step_now();
    for (bool with_optimizer : {false, true}) {
      std::vector<uint8_t> bytes{static_cast<uint8_t>(with_optimizer ? 1 : 0)};
      const auto body = ct::encode(make_state_response(server, with_optimizer));
      bytes.insert(bytes.end(), body.begin(), body.end());
      write("state", "response_h" + std::to_string(hidden) + (with_optimizer ? "_opt" : ""), bytes);
    }
  }
}

// First byte: format (% 3: sessions, counts JSON, counts CSV) and mapping; second: peers.
std::string trace_prefix(int format_and_mapping, int peers) {
  return std::string{static_cast<char>(format_and_mapping), static_cast<char>(peers)};
}

void trace_corpus() {
  write_text("trace", "sessions",
             trace_prefix(0, 4) + "# hosts\nhost,join_s,leave_s\na,0,10\nb,4,-1\na,16,30\nc,2,\n");
  write_text("trace", "sessions_sample", trace_prefix(3, 2) + "0,0,5\n1,1,2\n2,3,9\n");
  write_text(
      "trace", "counts_json",
      trace_prefix(1, 8) + R"({"metadata": {"gap_seconds": 300}, "data": [0, 2, 3, 1, 1, 0, 2]})");
  write_text("trace", "counts_csv", trace_prefix(2, 5) + "time_s,count\n0,1\n100,4\n250,0\n");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_corpus OUT_DIR\n");
    return 2;
  }
  out_root = argv[1];
  codec_corpus();
  dht_corpus();
  moe_corpus();
  averaging_corpus();
  matchmaking_corpus();
  scenario_corpus();
  trace_corpus();
  state_corpus();
  std::printf("corpora written under %s\n", out_root.c_str());
  return 0;
}
