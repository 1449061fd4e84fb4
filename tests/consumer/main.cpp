// Uses the installed headers and libraries: one gradient through the umbrella header, and one forward pass of
// BEGAN's evaluation classifier through atelier::began.
#include <cstdio>

#include <atelier.h>
#include <began/eval/fmnist_classifier.h>

int main() {
  using namespace atelier;
  Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor loss = (x * x).sum();
  loss.backward();
  std::vector<float> grad = x.grad().to_vector<float>();
  bool grad_ok = grad == std::vector<float>{2, 4, 6};
  std::printf("consumer: d/dx sum(x^2) at [1, 2, 3] = [%g, %g, %g] %s\n", grad[0], grad[1], grad[2],
              grad_ok ? "OK" : "WRONG");

  began::FmnistClassifier classifier;
  Shape logits = classifier.forward(zeros({2, 1, 32, 32})).shape();
  bool began_ok = logits == Shape{2, 10};
  std::printf("consumer: began::FmnistClassifier logits of 2 images have shape %s %s\n", shape_str(logits).c_str(),
              began_ok ? "OK" : "WRONG");
  return grad_ok && began_ok ? 0 : 1;
}
