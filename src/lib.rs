//! corecast
