export interface Config {
  harmonix?: {
    catalog?: {
      /**
       * Also accept AWSEnvironmentProvider and AWSEnvironment entities in the
       * shape the original awslabs Harmonix writes (those without the
       * `harmonix.dev/managed-by: harmonix` annotation). Default true.
       */
      acceptAwslabsEntities?: boolean;
    };
  };
}
