#include "core/probe.h"

#include <cmath>

#include "core/rpc.h"

namespace crowdtrain {
namespace {

// Responses larger than this are refused: a probe must not make a peer allocate or send without
// bound.
constexpr uint64_t kMaxProbeResponseBytes = 256ull << 20;

class ProbeApp final : public PeerApp {
 public:
  ProbeApp(Runtime& rt, const ProbeOptions& spec,
           std::shared_ptr<const std::vector<PeerId>> targets)
      : rt_(rt), spec_(spec), targets_(std::move(targets)), rpc_(rt) {
    rpc_.serve(MsgType::kProbeRequest, [this](PeerId from, Message req, RpcEndpoint::Responder r) {
      serve(from, std::move(req), std::move(r));
    });
  }

  void start() override {
    rt_.metrics().count("probe_apps_started");
    schedule_next();
  }

  void on_message(PeerId from, Message msg) override {
    if (!rpc_.handle(from, std::move(msg))) rt_.metrics().count("probe_unexpected_messages");
  }

 private:
  void schedule_next() {
    if (spec_.rate_hz <= 0.0 || targets_->empty()) return;
    rt_.schedule(from_seconds(rt_.rng().exponential(1.0 / spec_.rate_hz)), [this] {
      send_probe();
      schedule_next();
    });
  }

  void send_probe() {
    const auto& t = *targets_;
    PeerId to = t[rt_.rng().uniform_int(t.size())];
    if (to == rt_.self()) {
      if (t.size() == 1) return;
      to = t[rt_.rng().uniform_int(t.size())];  // one redraw; a second hit on self skips this probe
      if (to == rt_.self()) return;
    }
    Message req(MsgType::kProbeRequest);
    req.add_u64(kTagProbeRespBytes, spec_.response_bytes);
    req.add_filler(kTagPayload, spec_.request_bytes);
    const Time sent = rt_.now();
    rt_.metrics().count("probes_sent");
    CallOptions opts;
    opts.timeout = from_seconds(spec_.timeout_s);
    opts.retries = spec_.retries;
    rpc_.call(to, std::move(req), opts, [this, to, sent](Result<Message> r) {
      const double rtt_ms = to_millis(rt_.now() - sent);
      if (r.ok()) {
        rt_.metrics().count("probes_ok");
        rt_.metrics().observe("probe_rtt_ms", rtt_ms);
      } else {
        rt_.metrics().count("probes_failed");
      }
      rt_.metrics().event("probe", {{"to", to}, {"ok", r.ok() ? 1 : 0}, {"rtt_ms", rtt_ms}},
                          EventDetail::kOperation);
    });
  }

  void serve(PeerId from, Message req, RpcEndpoint::Responder respond) {
    auto want = req.u64(kTagProbeRespBytes);
    if (!want.ok()) {
      respond(make_error_response(req, "probe: " + want.error()));
      return;
    }
    if (want.value() > kMaxProbeResponseBytes) {
      respond(make_error_response(req, "probe: response of " + std::to_string(want.value()) +
                                           " bytes asked, limit " +
                                           std::to_string(kMaxProbeResponseBytes)));
      return;
    }
    rt_.metrics().count("probes_served");
    Message resp(MsgType::kProbeResponse);
    resp.add_filler(kTagPayload, want.value());
    respond(std::move(resp));
  }

  Runtime& rt_;
  const ProbeOptions spec_;
  std::shared_ptr<const std::vector<PeerId>> targets_;
  RpcEndpoint rpc_;
};

constexpr double kMaxRetries = 100;

}  // namespace

std::shared_ptr<const WorkloadOptions> read_probe_options(JsonReader& r) {
  auto o = std::make_shared<ProbeOptions>();
  r.read("rate_hz", o->rate_hz, NumberRange::non_negative());
  r.read("request_bytes", o->request_bytes);
  r.read("response_bytes", o->response_bytes);
  r.read("timeout_s", o->timeout_s, NumberRange::positive());
  r.read("retries", o->retries, NumberRange::closed(0, kMaxRetries));
  return o;
}

Status check_probe_options(const Scenario& s) {
  const ProbeOptions& o = probe_options_of(s);
  if (Status st = check_fits_in_message(s, "workload.probe.request_bytes", o.request_bytes);
      !st.ok()) {
    return st;
  }
  return check_fits_in_message(s, "workload.probe.response_bytes", o.response_bytes);
}

const ProbeOptions& probe_options_of(const Scenario& s) {
  return s.workload.options_of<ProbeOptions>("probe");
}

std::unique_ptr<PeerApp> make_probe_app(Runtime& rt, const ProbeOptions& spec,
                                        std::shared_ptr<const std::vector<PeerId>> targets) {
  return std::make_unique<ProbeApp>(rt, spec, std::move(targets));
}

nlohmann::json probe_summary(const MetricsSink& sink) {
  const auto pct = [&sink](double q) {
    const double v = sink.percentile("probe_rtt_ms", q);
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  return {{"probes_sent", sink.counter("probes_sent")},
          {"probes_ok", sink.counter("probes_ok")},
          {"probes_failed", sink.counter("probes_failed")},
          {"rtt_ms_p50", pct(0.5)},
          {"rtt_ms_p99", pct(0.99)}};
}

}  // namespace crowdtrain
