// Standalone Azure IMDS emulator. Options: docs/emulator.md (standard .NET configuration, section "Emulator").
return await MsiProxy.ImdsEmulator.Hosting.StandaloneEmulator.RunAsync(args).ConfigureAwait(false);
