// Uses the installed headers and library: one gradient through the umbrella header.
#include <cstdio>

#include <atelier.h>

int main() {
  using namespace atelier;
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor loss = (x * x).sum();
  loss.backward();
  std::vector<float> grad = x.grad().to_vector<float>();
  bool ok = grad == std::vector<float>{2, 4, 6};
  std::printf("consumer: d/dx sum(x^2) at [1, 2, 3] = [%g, %g, %g] %s\n", grad[0], grad[1], grad[2],
              ok ? "OK" : "WRONG");
  return ok ? 0 : 1;
}
