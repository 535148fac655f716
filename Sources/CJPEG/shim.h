// The TurboJPEG API returns errors instead of calling exit() or longjmp, so it imports as it is.
#pragma once
#include <turbojpeg.h>
