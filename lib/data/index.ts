/**
 * lib/data: The data of the method: caption files of both Flickr8k layouts and their split, tokens and the Vocabulary,
 * FlickrDataset, capsCollate and the DataLoader, the synthetic scenes with their boxes.
 * May import: lib/util only.
 */
export * from "./captions";
export * from "./collate";
export * from "./dataloader";
export * from "./dataset";
export * from "./image";
export * from "./synthetic";
export * from "./tokenizer";
export * from "./vocabulary";
export * from "./vocabulary-file";
