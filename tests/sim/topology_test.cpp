// Topology: region matrix loading and its errors, region and class shares, latency composition.
#include "sim/topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace crowdtrain::sim {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Topology, LoadsRegionMatrix) {
  auto m = load_region_matrix(write_temp("ok.csv", ",eu,us\neu,0,80\nus,80,10\n"));
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_EQ(m->names.size(), 2u);
  EXPECT_EQ(m->rtt(0, 1), 80.0);
  EXPECT_EQ(m->rtt(1, 1), 10.0);
}

TEST(Topology, RegionMatrixErrorsNameTheLine) {
  auto asym = load_region_matrix(write_temp("asym.csv", ",eu,us\neu,0,80\nus,90,0\n"));
  ASSERT_FALSE(asym.ok());
  EXPECT_NE(asym.error().find("not symmetric"), std::string::npos) << asym.error();
  auto bad = load_region_matrix(write_temp("bad.csv", ",eu,us\neu,0,x\nus,80,0\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find(":2:"), std::string::npos) << bad.error();
  auto cols = load_region_matrix(write_temp("cols.csv", ",eu,us\neu,0\nus,80,0\n"));
  ASSERT_FALSE(cols.ok());
  EXPECT_NE(cols.error().find("columns"), std::string::npos) << cols.error();
  EXPECT_FALSE(load_region_matrix("/nonexistent/x.csv").ok());
}

TEST(Topology, SharesAndLatency) {
  Scenario s;
  s.peers.count = 1000;
  s.network.regions.rtt_csv = write_temp("r.csv", ",a,b\na,0,100\nb,100,0\n");
  s.network.regions.weights = {{"a", 3.0}, {"b", 1.0}};
  s.network.access_latency_ms = DistSpec::constant(5);
  PeerClassSpec fast, slow;
  fast.name = "fast";
  fast.fraction = 0.1;
  slow.name = "slow";
  slow.fraction = 0.9;
  s.peers.classes = {fast, slow};
  auto t = Topology::build(s);
  ASSERT_TRUE(t.ok()) << t.error();
  int in_a = 0, fast_n = 0;
  PeerId pa = kNoPeer, pb = kNoPeer;
  for (PeerId p = 0; p < 1000; ++p) {
    if (t->peer(p).region == 0) {
      ++in_a;
      pa = p;
    } else {
      pb = p;
    }
    fast_n += t->peer(p).peer_class == 0;
  }
  EXPECT_EQ(in_a, 750);
  EXPECT_EQ(fast_n, 100);
  EXPECT_NEAR(t->one_way_latency_s(pa, pb), 0.005 + 0.050 + 0.005, 1e-12);
  t->set_partition({true, false});
  EXPECT_TRUE(t->partitioned(pa, pb));
  t->clear_partition();
  EXPECT_FALSE(t->partitioned(pa, pb));

  s.network.regions.weights = {{"nowhere", 1.0}};
  auto bad = Topology::build(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("network.regions.weights.nowhere"), std::string::npos);
}

}  // namespace
}  // namespace crowdtrain::sim
