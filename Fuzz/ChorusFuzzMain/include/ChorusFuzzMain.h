// The entry point of chorus-fuzz (see entry.c); nothing here is called from Swift.
#pragma once
