"""Turn timers and queue messages into Huawei Cloud CBR restore points."""
