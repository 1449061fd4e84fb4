// libFuzzer target: began::decode_image (the `--data folder` decoding path: libjpeg-turbo, libpng, the colour
// conversions, the crop and the area-average resize) on arbitrary bytes, under three requests: RGB at full size,
// luma at 8x8 with DCT-scaled decoding allowed, and RGB with a 4-pixel crop to 2x2. Every input is either decoded
// (and then the image has exactly the requested shape) or refused with an atelier::Error naming the file
// (tests/fuzz/fuzz_util.h): never a crash, a sanitizer report, or libjpeg's default of exiting the process.
#include <string>

#include "began/data/image_folder.h"
#include "tests/fuzz/fuzz_util.h"

using namespace atelier;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input("image", data, size);
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const began::ImageRequest& request :
       {began::ImageRequest{3, 0, 0, false}, began::ImageRequest{1, 0, 8, true}, began::ImageRequest{3, 4, 2, true}}) {
    try {
      const began::DecodedImage d = began::decode_image(bytes, path, request);
      if (d.one_component) {
        if (request.channels != 3 || !d.image.pixels.empty()) std::abort();
        continue;
      }
      const began::Image8& im = d.image;
      if (im.channels != request.channels || im.height != im.width || im.height < 1) std::abort();
      if (request.size > 0 && im.height != request.size) std::abort();
      if (request.crop > 0 && request.size == 0 && im.height != request.crop) std::abort();
      if (im.pixels.size() != static_cast<size_t>(im.height * im.width * im.channels)) std::abort();
    } catch (const Error& e) {
      fuzz::check_refusal(e, path, data, size);
    }
  }
  return 0;
}
