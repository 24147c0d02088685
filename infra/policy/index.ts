import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

// The engine starts this file as the pack's program; PolicyPack serves the policies over gRPC.
new PolicyPack("mlscore", { policies });
