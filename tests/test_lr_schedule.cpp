// Learning-rate schedules (nn/lr_schedule.h): StepLR against its closed form, the window rule step by step (first
// window, improvement, threshold, factor, floor), one rate for two optimisers, and exact state round trips.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nn/lr_schedule.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

nn::Adam make_adam(double lr) { return nn::Adam({zeros({3}).requires_grad_(true)}, lr); }

// Runs `schedule` over `metrics` and returns the rate after each step.
std::vector<double> rates(nn::WindowPlateauLR& schedule, const std::vector<double>& metrics) {
  std::vector<double> out;
  for (double m : metrics) {
    schedule.step(m);
    out.push_back(schedule.lr());
  }
  return out;
}

}  // namespace

TEST_CASE("StepLR multiplies the rate by gamma every step_size steps, in every optimizer") {
  nn::Adam a = make_adam(0.1), b = make_adam(0.1);
  nn::StepLR schedule({&a, &b}, 3, 0.5);
  for (int i = 1; i <= 10; ++i) {
    schedule.step();
    const double expected = 0.1 * std::pow(0.5, i / 3);
    CHECK(schedule.lr() == doctest::Approx(expected).epsilon(1e-15));
    CHECK(a.lr() == schedule.lr());
    CHECK(b.lr() == schedule.lr());
  }
  CHECK(schedule.steps() == 10);
}

TEST_CASE("StepLR state round-trips and refuses a foreign state") {
  nn::Adam a = make_adam(0.1);
  nn::StepLR schedule({&a}, 2, 0.1);
  for (int i = 0; i < 5; ++i) schedule.step();
  nn::Adam a2 = make_adam(0.1);
  nn::StepLR resumed({&a2}, 2, 0.1);
  resumed.load_state_dict(schedule.state_dict());
  CHECK(resumed.lr() == schedule.lr());
  CHECK(a2.lr() == schedule.lr());
  CHECK(resumed.steps() == 5);
  schedule.step();
  resumed.step();
  CHECK(resumed.lr() == schedule.lr());

  nn::Adam a3 = make_adam(1e-3);
  nn::WindowPlateauLR other({&a3}, {.window = 4});
  check_throws_with([&] { resumed.load_state_dict(other.state_dict()); },
                    {"StepLR.load_state_dict", "missing: steps", "unexpected: window_sum"});
  CHECK(resumed.lr() == schedule.lr());  // unchanged after the refused load
}

TEST_CASE("WindowPlateauLR: the first window sets the best; a window not lower by the threshold halves the rate") {
  nn::Adam a = make_adam(1e-4);
  nn::WindowPlateauLR schedule({&a}, {.window = 2, .threshold = 0.1, .factor = 0.5, .min_lr = 1e-6});
  // Window means: 1.0 (first), 0.85 (15% lower: improved), 0.8 (only 5.9% lower: decay), 0.5 (improved),
  // 0.6 (worse: decay).
  std::vector<double> got = rates(schedule, {1.2, 0.8, 0.9, 0.8, 0.7, 0.9, 0.4, 0.6, 0.6, 0.6});
  std::vector<double> want = {1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 5e-5, 5e-5, 5e-5, 5e-5, 2.5e-5};
  CHECK(got == want);
  CHECK(schedule.windows() == 5);
  CHECK(schedule.best() == doctest::Approx(0.5));
  CHECK(a.lr() == 2.5e-5);
}

TEST_CASE("WindowPlateauLR never goes below min_lr and reports each cut") {
  nn::Adam a = make_adam(1e-4), b = make_adam(1e-4);
  nn::WindowPlateauLR schedule({&a, &b}, {.window = 1, .threshold = 1e-3, .factor = 0.5, .min_lr = 2e-5});
  CHECK_FALSE(schedule.step(1.0));  // first window
  CHECK(schedule.step(1.0));        // 5e-5
  CHECK(schedule.step(1.0));        // 2.5e-5
  CHECK(schedule.step(1.0));        // 1.25e-5 -> floored at 2e-5
  CHECK(schedule.lr() == 2e-5);
  CHECK_FALSE(schedule.step(1.0));  // already at the floor
  CHECK(schedule.lr() == 2e-5);
  CHECK(b.lr() == 2e-5);
  // A 0.1% threshold: 0.9995 is only 0.05% lower than 1.0, so it does not count as an improvement.
  nn::Adam c = make_adam(1e-4);
  nn::WindowPlateauLR strict({&c}, {.window = 1});
  strict.step(1.0);
  CHECK(strict.step(0.9995));
  CHECK_FALSE(strict.step(0.99));
}

TEST_CASE("WindowPlateauLR resumed mid-window continues exactly like an uninterrupted run") {
  std::vector<double> metrics;
  for (int i = 0; i < 40; ++i) metrics.push_back(1.0 + 0.3 * std::sin(0.7 * i) - 0.01 * i);
  nn::Adam a = make_adam(1e-4);
  nn::WindowPlateauLR straight({&a}, {.window = 6, .threshold = 0.05});
  std::vector<double> want = rates(straight, metrics);

  nn::Adam b = make_adam(1e-4);
  nn::WindowPlateauLR first({&b}, {.window = 6, .threshold = 0.05});
  std::vector<double> got = rates(first, {metrics.begin(), metrics.begin() + 17});  // stops inside window 3
  nn::Adam c = make_adam(1e-4);
  nn::WindowPlateauLR second({&c}, {.window = 6, .threshold = 0.05});
  second.load_state_dict(first.state_dict());
  CHECK(c.lr() == first.lr());
  std::vector<double> rest = rates(second, {metrics.begin() + 17, metrics.end()});
  got.insert(got.end(), rest.begin(), rest.end());
  CHECK(got == want);
  CHECK(want.front() != want.back());  // the run did cut the rate, so the comparison means something
}

TEST_CASE("lr schedules refuse bad settings and non-finite metrics, naming the value") {
  nn::Adam a = make_adam(1e-4), b = make_adam(2e-4);
  check_throws_with([&] { nn::WindowPlateauLR({&a, &b}, {}); }, {"one rate", "0.0001", "0.0002"});
  check_throws_with([&] { nn::WindowPlateauLR({}, {}); }, {"at least one optimizer"});
  check_throws_with([&] { nn::WindowPlateauLR({&a}, {.window = 0}); }, {"window must be >= 1", "0"});
  check_throws_with([&] { nn::WindowPlateauLR({&a}, {.factor = 1.5}); }, {"factor", "1.5"});
  check_throws_with([&] { nn::WindowPlateauLR({&a}, {.threshold = -1}); }, {"threshold", "-1"});
  check_throws_with([&] { nn::StepLR({&a}, 0); }, {"step_size", "0"});
  nn::WindowPlateauLR schedule({&a}, {.window = 3});
  check_throws_with([&] { schedule.step(std::nan("")); }, {"not finite", "nan"});
  nn::NamedTensors bad = schedule.state_dict();
  bad[2].second = scalar_tensor(7, DType::Float64);  // window_count 7 with a window of 3
  check_throws_with([&] { schedule.load_state_dict(bad); }, {"window_count 7", "3 steps"});
}
